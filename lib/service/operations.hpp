// service/operations: IPC commands that reach the PACS or XNAT (pacs echo, submit --dry-run
// with the project's checks in XNAT, and the submit pre-flight against XNAT).
#pragma once

#include <optional>

#include "config/config.hpp"
#include "ipc/server.hpp"
#include "service/commands.hpp"

namespace p2x::xnat {
class Client;
}

namespace p2x::service {

void register_operations(ipc::Dispatcher& dispatcher, const config::Config& cfg,
                         xnat::Client* xnat);

// Submit pre-flight: the project must exist in XNAT and have an anonymisation script enabled
// (its own or the site's; not asked with args.no_anonymisation_check; an XNAT that does not
// answer is "not verified" and refused too); rows whose session label already exists there are
// refused (listed with their CSV lines) unless args.skip_existing (those rows are skipped) or
// args.append (they are appended to). `forced_prearchive` is xnat.prearchive (nullopt:
// "project"). Returns {"skip_rows":[..],"warnings":[..],"checks":[anonymisation, destination]}.
nlohmann::json xnat_preflight(xnat::Client& xnat, const nlohmann::json& args,
                              const std::vector<store::NewItem>& items,
                              std::optional<bool> forced_prearchive = std::nullopt);

}  // namespace p2x::service
