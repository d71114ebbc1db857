// The daemon's command handlers without the daemon (see fixture.hpp).
#include "fixture.hpp"

#include <catch2/catch.hpp>

#include "ipc/protocol.hpp"
#include "jobopts/jobopts.hpp"
#include "service/operations.hpp"

namespace p2x::service::test {

std::string accession_csv(int rows) {
  std::string csv = "Accession Number,Subject,Session\r\n";
  for (int i = 1; i <= rows; ++i) {
    const std::string n = std::to_string(i);
    csv += "ACC" + n + ",SUBJ" + n + ",SESS" + n + "\r\n";
  }
  return csv;
}

json submit_args(const std::string& csv, const std::string& project, const std::string& pacs) {
  jobopts::SubmitArgs args;
  args.csv_name = "studies.csv";
  args.csv_base64 = ipc::bytes_value(csv).get<std::string>();
  args.project = project;
  args.pacs = pacs;
  return jobopts::to_json(args);  // the CLI's form of a request
}

config::Config Commands::make_config(std::uint16_t pacs_port) {
  config::Config c;
  c.ae_title = "P2XSERVICE";
  for (const char* name : {"testpacs", "otherpacs"}) {
    config::PacsNode node;
    node.name = name;
    node.ae_title = "TESTPACS";
    node.host = "127.0.0.1";
    node.port = pacs_port;
    node.timeouts.connect_s = 5;
    c.pacs.push_back(node);
  }
  return c;
}

Commands::Commands(std::uint16_t pacs_port)
    : cfg(make_config(pacs_port)), store(dir_.file("store.db")), ctx{cfg, store, {}} {
  ctx.hooks.wake = [this] { ++wakes; };
  register_commands(dispatcher, ctx);
  register_operations(dispatcher, cfg, nullptr);
}

json Commands::call(const std::string& cmd, const json& args, uid_t uid) {
  ipc::Peer peer;
  peer.uid = uid;
  peer.gid = uid;
  peer.pid = 1;
  json answer = dispatcher.dispatch(ipc::make_request(cmd, args).dump(), peer);
  // Every answer, good or bad, must survive the trip through the socket as one JSON line.
  REQUIRE(answer.dump().find('\n') == std::string::npos);
  return answer;
}

json Commands::ok(const std::string& cmd, const json& args) {
  json answer = call(cmd, args);
  INFO(cmd << " " << args.dump() << " -> " << answer.dump());
  REQUIRE(answer.at("ok") == true);
  return answer.at("result");
}

std::int64_t Commands::submit(int rows, const std::string& project) {
  return ok("submit", submit_args(accession_csv(rows), project)).at("job").get<std::int64_t>();
}

json error_of(const json& answer) {
  INFO(answer.dump());
  REQUIRE(answer.at("ok") == false);
  return answer.at("error");
}

}  // namespace p2x::service::test
