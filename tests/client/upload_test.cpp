// The CSV a command reads and sends (issue 12, items 10-12): files that are not regular CSVs are
// refused by name, a CSV over the daemon's request limit is refused before it is sent (with the
// size, the real CSV limit and what to do), a daemon's own too-large answer reaches the user
// instead of "Is the daemon running?", and formula cells are warned about at check and submit.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.hpp"
#include "client/cli.hpp"
#include "client/upload.hpp"
#include "ipc/protocol.hpp"
#include "ipc/server.hpp"
#include "support/temp_dir.hpp"

using namespace p2x::client;
using nlohmann::json;
using p2x::test::CliRun;
using p2x::test::run;
using p2x::test::TempDir;
namespace ipc = p2x::ipc;

namespace {

// A daemon's socket with a request limit of `max_request` bytes: answers ping (saying that limit
// when `tells_limit`) and submit (recording the CSV it got).
class LimitedDaemon {
 public:
  LimitedDaemon(std::size_t max_request, bool tells_limit) {
    dispatcher_.add("ping", [=](const json&, const ipc::Peer&) {
      json out{{"pong", true}, {"pid", 1}};
      if (tells_limit) out["max_request_bytes"] = max_request;
      return out;
    });
    dispatcher_.add("submit", [this](const json& args, const ipc::Peer&) {
      std::lock_guard lock(mu_);
      submitted_.push_back(ipc::bytes_argument(args, "csv_base64"));
      return json{{"job", 1}, {"items", 1}, {"warnings", json::array()}};
    });
    server_ = std::make_unique<ipc::Server>(socket_, dispatcher_, max_request);
  }
  CliRun submit(const std::string& csv_path) {
    return run({"--socket", socket_, "submit", csv_path, "-p", "PROJ1", "--pacs", "main"});
  }
  CliRun check(const std::string& csv_path) {
    return run({"--socket", socket_, "check", csv_path});
  }
  std::vector<std::string> submitted() {
    std::lock_guard lock(mu_);
    return submitted_;
  }

 private:
  TempDir dir_{"p2x-client"};
  std::string socket_ = dir_.file("pacs2xnatd.sock");
  ipc::Dispatcher dispatcher_;
  std::unique_ptr<ipc::Server> server_;
  std::mutex mu_;
  std::vector<std::string> submitted_;
};

// A valid CSV of exactly `size` bytes (the last accession padded).
std::string csv_of_size(std::size_t size) {
  std::string csv = "Accession Number\n";
  int i = 0;
  while (csv.size() + 12 < size) csv += "A" + std::to_string(100000 + i++) + "\n";
  csv += "Z" + std::string(size - csv.size() - 2, '9') + "\n";
  return csv;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The "N bytes" of "... larger than the X MB (N bytes) CSV ..." in a too-large message.
std::uint64_t csv_limit_in(const std::string& message) {
  std::smatch m;
  static const std::regex kLimit(R"(larger than the [0-9.]+ [KMG]?B \(([0-9]+) bytes\) CSV)");
  if (!std::regex_search(message, m, kLimit)) return 0;
  return std::stoull(m[1]);
}

}  // namespace

TEST_CASE("csv_limit is what base64 leaves of the request limit", "[client][upload]") {
  CHECK(csv_limit(1000, 100) == 675);  // 900 characters of base64 carry 675 bytes
  CHECK(csv_limit(1003, 100) == 675);  // a partial group of four carries nothing
  CHECK(csv_limit(100, 100) == 0);
  CHECK(csv_limit(50, 100) == 0);
  const std::string msg =
      too_large_message("/x/big.csv", 200000000, 67108864, 50331000, LimitSource::Daemon);
  CHECK(msg.find("/x/big.csv is 200.0 MB (200000000 bytes), larger than the 50.3 MB "
                 "(50331000 bytes) CSV that pacs2xnatd accepts: pacs2xnatd's "
                 "limits.max_request_bytes is 67108864 bytes") == 0);
  CHECK(msg.find("Split the CSV") != std::string::npos);
  CHECK(msg.find("raise limits.max_request_bytes") != std::string::npos);
}

TEST_CASE("check and submit refuse what is not a regular CSV file, by name", "[client][upload]") {
  TempDir t("p2x-client");
  REQUIRE(mkfifo(t.file("fifo").c_str(), 0600) == 0);
  const std::pair<std::string, std::string> cases[] = {
      {t.path(), t.path() + " is a directory, not a CSV file"},
      {"/dev/zero",
       "/dev/zero is a character device (like /dev/zero or a terminal), not a CSV "
       "file"},
      {t.file("fifo"), t.file("fifo") + " is a FIFO (named pipe), not a CSV file"},
      {t.file("absent.csv"),
       "cannot read " + t.file("absent.csv") + ": No such file or directory"}};
  LimitedDaemon d(1 << 20, true);
  for (const auto& [path, message] : cases) {
    INFO(path);
    const CliRun check = run({"--socket", t.file("none.sock"), "check", path});
    CHECK(check.code == kUsage);
    CHECK(check.err == "pacs2xnat: " + message + "\n");
    const CliRun submit = d.submit(path);
    CHECK(submit.code == kUsage);
    CHECK(submit.err == "pacs2xnat: " + message + "\n");
  }
  CHECK(d.submitted().empty());
}

TEST_CASE("a CSV over the daemon's limit is refused before sending - the limit is exact",
          "[client][upload]") {
  constexpr std::size_t kLimit = 8192;
  LimitedDaemon d(kLimit, true);
  TempDir t("p2x-client");
  write(t.file("big.csv"), csv_of_size(20000));
  const CliRun big = d.submit(t.file("big.csv"));
  CHECK(big.code == kRefused);
  INFO(big.err);
  CHECK(big.err.find("pacs2xnat: " + t.file("big.csv") +
                     " is 20.0 KB (20000 bytes), larger "
                     "than the ") == 0);
  CHECK(big.err.find("pacs2xnatd's limits.max_request_bytes is 8192 bytes") != std::string::npos);
  CHECK(big.err.find("Split the CSV") != std::string::npos);
  CHECK(d.submitted().empty());

  // The largest CSV the message names is accepted by the daemon's own limit; one byte more is
  // refused by the CLI.
  const std::uint64_t csv_max = csv_limit_in(big.err);
  REQUIRE(csv_max > 5000);
  REQUIRE(csv_max < kLimit * 3 / 4);
  write(t.file("fits.csv"), csv_of_size(csv_max));
  const CliRun fits = d.submit(t.file("fits.csv"));
  INFO(fits.err);
  CHECK(fits.code == kOk);
  REQUIRE(d.submitted().size() == 1);
  CHECK(d.submitted()[0].size() == csv_max);
  write(t.file("over.csv"), csv_of_size(csv_max + 1));
  CHECK(d.submit(t.file("over.csv")).code == kRefused);
  CHECK(d.submitted().size() == 1);
}

TEST_CASE("the daemon's too-large answer reaches the user, not 'is the daemon running?'",
          "[client][upload]") {
  // A daemon that does not say its limit: the CLI sends, the daemon answers too_large and hangs
  // up while the CLI is still writing (EPIPE): its answer must still be read and shown.
  LimitedDaemon d(64 * 1024, false);
  TempDir t("p2x-client");
  write(t.file("big.csv"), csv_of_size(2 * 1024 * 1024));
  const CliRun r = d.submit(t.file("big.csv"));
  INFO(r.err);
  CHECK(r.code == kRefused);
  CHECK(r.err.find("request larger than the daemon's limit") != std::string::npos);
  CHECK(r.err.find("Is the daemon running?") == std::string::npos);
  CHECK(d.submitted().empty());
}

TEST_CASE("check takes the default limit - a running daemon's higher limit when it has one",
          "[client][upload]") {
  TempDir t("p2x-client");
  // Sparse: 60 MB of NUL bytes, above the 50.3 MB CSV of the default 64 MiB request.
  const std::string big = t.file("big.csv");
  write(big, "");
  REQUIRE(truncate(big.c_str(), 60 * 1000 * 1000) == 0);
  const CliRun alone = run({"--socket", t.file("none.sock"), "check", big});
  CHECK(alone.code == kRefused);
  CHECK(alone.err.find(big + " is 60.0 MB (60000000 bytes), larger than the ") !=
        std::string::npos);
  CHECK(alone.err.find("the default limits.max_request_bytes is 67108864 bytes") !=
        std::string::npos);

  LimitedDaemon generous(128 * 1024 * 1024, true);
  const CliRun read = generous.check(big);
  CHECK(read.code == kRefused);  // read and parsed this time: NUL bytes are its problem
  CHECK(read.err.find("contains NUL bytes") != std::string::npos);
  CHECK(read.err.find("larger than") == std::string::npos);
}

TEST_CASE("formula cells are warned about at check and submit, by line and column",
          "[client][upload]") {
  TempDir t("p2x-client");
  write(t.file("f.csv"), "Patient ID,Study Date\n=cmd|' /C calc'!A0,20240101\nP2,20240102\n");
  const CliRun check = run({"--socket", t.file("none.sock"), "check", t.file("f.csv")});
  CHECK(check.code == kOk);
  CHECK(check.out == t.file("f.csv") +
                         ": 2 rows OK (0 by accession, 2 by patient ID + date, 0 "
                         "by Study Instance UID)\n");
  CHECK(check.err.find(t.file("f.csv") + ": line 2, column 1 (Patient ID): warning: row 1: "
                                         "'=cmd|' /C calc'!A0' starts with '='") == 0);
  const CliRun as_json = run({"--socket", t.file("none.sock"), "check", t.file("f.csv"), "--json"});
  const json j = json::parse(as_json.out);
  REQUIRE(j.at("warnings").size() == 1);
  CHECK(j.at("warnings")[0].at("line") == 2);
  CHECK(j.at("warnings")[0].at("column_name") == "Patient ID");

  LimitedDaemon d(1 << 20, true);
  const CliRun submit = d.submit(t.file("f.csv"));
  CHECK(submit.code == kOk);
  CHECK(submit.err.find("line 2, column 1 (Patient ID): warning: row 1:") != std::string::npos);
  CHECK(d.submitted().size() == 1);
}

TEST_CASE("submit without a daemon still says the daemon is unreachable", "[client][upload]") {
  TempDir t("p2x-client");
  write(t.file("s.csv"), "Accession Number\nA1\n");
  const CliRun r = run(
      {"--socket", t.file("none.sock"), "submit", t.file("s.csv"), "-p", "P", "--pacs", "main"});
  CHECK(r.code == kUnreachable);
  CHECK(r.err.find("Is the daemon running?") != std::string::npos);
}
