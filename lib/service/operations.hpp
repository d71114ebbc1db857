// service/operations: IPC commands that reach the PACS or XNAT (pacs echo, submit --dry-run,
// and the submit pre-flight against XNAT).
#pragma once

#include "config/config.hpp"
#include "ipc/server.hpp"
#include "service/commands.hpp"

namespace p2x::xnat {
class Client;
}

namespace p2x::service {

void register_operations(ipc::Dispatcher& dispatcher, const config::Config& cfg,
                         xnat::Client* xnat);

// Submit pre-flight: the project must exist in XNAT; rows whose session label already exists
// there are refused (listed with their CSV lines) unless args.skip_existing (those rows are
// skipped) or args.append (they are appended to). Returns {"skip_rows":[..],"warnings":[..]}.
nlohmann::json xnat_preflight(xnat::Client& xnat, const nlohmann::json& args,
                              const std::vector<store::NewItem>& items);

}  // namespace p2x::service
