// The daemon's command handlers without the daemon: a Config with two PACS nodes, a Store on a
// temp file, and register_commands/register_operations on an ipc::Dispatcher.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "ipc/server.hpp"
#include "service/commands.hpp"
#include "store/store.hpp"
#include "support/temp_dir.hpp"

namespace p2x::service::test {

using nlohmann::json;

// "Accession Number,Subject,Session" with rows ACC<i>,SUBJ<i>,SESS<i> for i = 1..rows (CRLF).
std::string accession_csv(int rows);

// {"csv_name", "csv_base64", "project", "pacs"} for a submit or dry_run.
json submit_args(const std::string& csv, const std::string& project = "PROJ1",
                 const std::string& pacs = "testpacs");

class Commands {
  p2x::test::TempDir dir_{"p2x-service"};  // first: the store lives in it

 public:
  // testpacs and otherpacs on 127.0.0.1 at `pacs_port` (default: a closed port).
  explicit Commands(std::uint16_t pacs_port = 1);

  // One request line through the dispatcher, as the socket would deliver it, from `uid`.
  json call(const std::string& cmd, const json& args = json::object(), uid_t uid = 4242);
  // The result of a call that must succeed.
  json ok(const std::string& cmd, const json& args = json::object());
  // Submits accession_csv(rows) and returns the new job's id.
  std::int64_t submit(int rows, const std::string& project = "PROJ1");

  config::Config cfg;
  store::Store store;
  Context ctx;
  ipc::Dispatcher dispatcher;
  int wakes = 0;  // calls of the wake hook

 private:
  static config::Config make_config(std::uint16_t pacs_port);
};

// The error of a call that must fail: {"code", "message"}.
json error_of(const json& answer);

}  // namespace p2x::service::test
