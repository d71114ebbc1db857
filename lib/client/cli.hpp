// client: the pacs2xnat command line (argument parsing, talking to the daemon, printing).
// Exit codes: 0 ok, 1 request refused (the message says why), 2 usage, 3 daemon unreachable.
#pragma once

#include <iosfwd>

#include <nlohmann/json.hpp>

namespace p2x::client {

enum ExitCode { kOk = 0, kRefused = 1, kUsage = 2, kUnreachable = 3 };

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err);

// The exit code for a daemon's answer ({"ok": ...}): kOk with `result` set to its "result", or
// kRefused with the daemon's message written to `err`.
int read_answer(const nlohmann::json& response, nlohmann::json& result, std::ostream& err);

}  // namespace p2x::client
