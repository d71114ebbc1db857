// service/operations: IPC commands that reach the PACS or XNAT (pacs echo, submit --dry-run
// with the project's checks in XNAT, and the submit pre-flight against XNAT). The checks
// themselves are pipeline/preflight's; here the configured PACS and XNAT clients and the JSON.
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

// Submit pre-flight (pipeline::submit_preflight against XNAT's REST API; its refusals become
// CommandError refused): the project exists and is set up as the site requires, and rows whose
// session already exists are refused, skipped or appended to as args' job options say.
// `forced_prearchive` is xnat.prearchive (nullopt: "project").
// Returns {"skip_rows":[..],"warnings":[..],"checks":[anonymisation, destination]}.
nlohmann::json xnat_preflight(xnat::Client& xnat, const nlohmann::json& args,
                              const std::vector<store::NewItem>& items,
                              std::optional<bool> forced_prearchive = std::nullopt);

}  // namespace p2x::service
