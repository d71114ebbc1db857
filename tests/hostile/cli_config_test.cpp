// Hostile-peer suite, the CSV/CLI and configuration doors (issue 12, items 10, 11, 12 and 14),
// replayed with the real pacs2xnat and pacs2xnatd binaries: files that are not CSVs, a 200 MB
// CSV, formula cells and the report, and configuration and credentials files that are deep,
// overflowing, wrongly encoded or point at directories the daemon cannot use. Each asserts the
// exit code, a message naming the file (row, column, limit) and, where a daemon runs, that it
// stays up and answers another client within a second, with nothing queued or sent to XNAT.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "ipc/client.hpp"
#include "ipc/protocol.hpp"
#include "standin.hpp"
#include "support/temp_dir.hpp"

using namespace p2x::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The daemon is still running and answers another client within a second.
void require_alive_and_serving(const Daemon& d) {
  int status = 0;
  REQUIRE(waitpid(d.pid(), &status, WNOHANG) == 0);
  const auto start = std::chrono::steady_clock::now();
  const json pong = p2x::ipc::call(d.socket(), "ping", json::object(), 1);
  CHECK(pong.value("ok", false));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
}

// No job was queued.
void require_no_jobs(const Daemon& d) {
  const auto list = d.cli({"list", "--json"});
  REQUIRE(list.exit_code == 0);
  CHECK(json::parse(list.out).at("jobs").empty());
}

CommandResult check_config(const std::string& config_path) {
  return run_program({P2X_DAEMON_BIN, "--config", config_path, "--check-config"});
}

// The CLI with `args` after --socket, its standard input from `shell_input` (a shell pipeline
// or redirection around "$CLI", e.g. "cat f.csv | $CLI check -"): test-only use of /bin/sh.
CommandResult cli_with_input(const Daemon& d, const std::string& shell_input) {
  return run_program({"/bin/sh", "-c", shell_input},
                     {std::string("CLI=") + P2X_CLI_BIN + " --socket " + d.socket()});
}

// A temp dir with an XNAT stand-in that knows project P.
struct Env : TempDir {
  Env() : TempDir("p2x-hostile-cli") {}
  XnatStandin xnat{file("xnat"), {"admin:admin"}, {"P"}};
  json config(json extra = json::object()) const {
    json c{{"xnat", {{"url", xnat.url()}}}};
    c.merge_patch(extra);
    return c;
  }
};

}  // namespace

TEST_CASE("check and submit refuse /dev/zero, a directory and a FIFO by name - quickly",
          "[hostile][csv]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  REQUIRE(mkfifo(t.file("fifo").c_str(), 0600) == 0);
  const std::pair<std::string, std::string> cases[] = {
      {"/dev/zero", "/dev/zero is a character device"},
      {t.path(), t.path() + " is a directory, not a CSV file"},
      {t.file("fifo"), t.file("fifo") + " is a FIFO (named pipe), not a CSV file"}};
  for (const auto& [path, says] : cases) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"check", path},
          std::vector<std::string>{"submit", path, "-p", "P", "--pacs", "testpacs"}}) {
      INFO(args[0] << " " << path);
      const auto start = std::chrono::steady_clock::now();
      const auto r = d.cli(args);
      CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("pacs2xnat: " + says) == 0);
      CHECK(r.err.find("basic_filebuf") == std::string::npos);
    }
  }
  require_alive_and_serving(d);
  require_no_jobs(d);
  CHECK(t.xnat.uploads_per_session().empty());
}

TEST_CASE(
    "a 200 MB CSV: the CLI names its size, the CSV limit and the fix - never 'is the "
    "daemon running?'",
    "[hostile][csv]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  const std::string big = t.file("big.csv");
  write_file(big, "Accession Number\nA1\n");
  REQUIRE(truncate(big.c_str(), 200 * 1000 * 1000) == 0);  // sparse: instant, no disk

  const auto submit = d.cli({"submit", big, "-p", "P", "--pacs", "testpacs"});
  INFO(submit.err);
  CHECK(submit.exit_code == 1);
  CHECK(submit.err.find("pacs2xnat: " + big +
                        " is 200.0 MB (200000000 bytes), larger than the "
                        "50.3 MB (50331") == 0);
  CHECK(submit.err.find("pacs2xnatd's limits.max_request_bytes is 67108864 bytes") !=
        std::string::npos);
  CHECK(submit.err.find("Split the CSV") != std::string::npos);
  CHECK(submit.err.find("Is the daemon running?") == std::string::npos);
  const auto check = d.cli({"check", big});
  CHECK(check.exit_code == 1);
  CHECK(check.err.find(big + " is 200.0 MB") != std::string::npos);
  require_alive_and_serving(d);
  require_no_jobs(d);

  // A sender that does not check first (an older CLI): the daemon's too_large answer still
  // reaches it although the daemon hangs up while the request is being written.
  const std::string huge_request(80 * 1024 * 1024, 'A');
  const json answer = p2x::ipc::call(d.socket(), "submit", json{{"csv_base64", huge_request}}, 60);
  CHECK(answer.value("ok", true) == false);
  CHECK(answer["error"].value("code", "") == "too_large");
  require_alive_and_serving(d);
  require_no_jobs(d);
}

TEST_CASE("formula cells: check warns by line and column, report writes them as text",
          "[hostile][csv]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  const std::string csv = t.file("formulas.csv");
  write_file(csv,
             "Accession Number,Patient ID,Study Date\n"
             "@SUM(1),,\n"
             "+1-1,,\n"
             "-5,,\n"
             ",=cmd|' /C calc'!A0,20240101\n");
  const auto check = d.cli({"check", csv});
  INFO(check.err);
  CHECK(check.exit_code == 0);
  for (const char* where :
       {": line 2, column 1 (Accession Number): warning: row 1: '@SUM(1)' starts with '@'",
        ": line 3, column 1 (Accession Number): warning: row 2: '+1-1' starts with '+'",
        ": line 4, column 1 (Accession Number): warning: row 3: '-5' starts with '-'",
        ": line 5, column 2 (Patient ID): warning: row 4: '=cmd|' /C calc'!A0' starts with '='"}) {
    CHECK(check.err.find(csv + where) != std::string::npos);
  }

  const auto submit = d.cli({"submit", csv, "-p", "P", "--pacs", "testpacs"});
  INFO(submit.err);
  REQUIRE(submit.exit_code == 0);
  CHECK(submit.err.find("row 4: '=cmd|' /C calc'!A0' starts with '='") != std::string::npos);

  const auto report = d.cli({"report", "1"});
  REQUIRE(report.exit_code == 0);
  INFO(report.out);
  // Every formula-like value is quoted and starts with a single quote; none starts a field bare.
  for (const char* field :
       {",\"'@SUM(1)\",", ",\"'+1-1\",", ",\"'-5\",", ",\"'=cmd|' /C calc'!A0\","}) {
    CHECK(report.out.find(field) != std::string::npos);
  }
  for (const char* bare : {",@SUM", ",+1-1", ",-5,", ",=cmd"}) {
    CHECK(report.out.find(bare) == std::string::npos);
  }
  require_alive_and_serving(d);
  CHECK(t.xnat.uploads_per_session().empty());
}

TEST_CASE(
    "pacs2xnatd --check-config: deep nesting and 1e400 are refused with the file and the "
    "path",
    "[hostile][config]") {
  TempDir t("p2x-hostile-cli");
  const std::string deep = t.file("deep.json");
  write_file(deep, "{\"limits\": " + std::string(40000, '[') + std::string(40000, ']') + "}");
  const auto start = std::chrono::steady_clock::now();
  const auto r = check_config(deep);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("pacs2xnatd: " + deep + ":1:") == 0);
  CHECK(r.err.find("nested more than 32 levels deep") != std::string::npos);

  Daemon base(t.path());  // writes a valid config and credentials file, starts nothing
  json config = json::parse(std::ifstream(base.config_path()));
  std::string text = config.dump(2);
  const std::string key = "\"storage_port\": ";
  const auto at = text.find(key);
  REQUIRE(at != std::string::npos);
  text.replace(at + key.size(), text.find_first_of(",\n", at) - at - key.size(), "1e400");
  const std::string overflow = t.file("overflow.json");
  write_file(overflow, text);
  const auto o = check_config(overflow);
  CHECK(o.exit_code == 2);
  CHECK(o.err == "pacs2xnatd: " + overflow +
                     ": storage_port: invalid JSON: number overflow parsing '1e400'\n");
}

TEST_CASE(
    "pacs2xnatd --check-config: a UTF-16 credentials file is refused - a trailing space is "
    "kept and pointed out",
    "[hostile][config]") {
  TempDir t("p2x-hostile-cli");
  Daemon base(t.path());
  const std::string credentials = t.file("xnat.credentials");
  std::string utf16 = "\xFF\xFE";
  for (char c : std::string("admin:admin\n")) utf16 += std::string{c, '\0'};
  write_file(credentials, utf16, 0600);
  const auto wide = check_config(base.config_path());
  CHECK(wide.exit_code == 2);
  CHECK(wide.err.find("XNAT credentials file " + credentials + ": is UTF-16 encoded") !=
        std::string::npos);

  write_file(credentials, "admin:admin \n", 0600);
  const auto spaced = check_config(base.config_path());
  CHECK(spaced.exit_code == 0);
  CHECK(spaced.out.find("note: the XNAT password in " + credentials +
                        " ends with white space, which is kept") == 0);
  CHECK(spaced.out.find("admin ") == std::string::npos);  // never the password itself
}

TEST_CASE(
    "state and spool directories the daemon cannot use: exit 2 at --check-config and at "
    "start-up",
    "[hostile][config]") {
  TempDir t("p2x-hostile-cli");
  write_file(t.file("a-file"), "x");
  const struct {
    json paths;
    std::string says;
  } cases[] = {
      {{{"state_dir", t.file("a-file") + "/state"}},
       "cannot use state directory " + t.file("a-file") + "/state: cannot create it: "},
      {{{"state_dir", t.file("state")}, {"spool_dir", t.file("a-file")}},
       "cannot use spool directory " + t.file("a-file") + ": it exists but is not a directory"},
  };
  for (const auto& c : cases) {
    Daemon d(t.path(), json{{"paths", c.paths}});
    const auto check = check_config(d.config_path());
    INFO(check.err);
    CHECK(check.exit_code == 2);
    CHECK(check.err.find("pacs2xnatd: " + c.says) == 0);
    CHECK_THROWS_WITH(d.start(), Catch::Contains("daemon exited during start-up (2)"));
    CHECK(d.last_exit() == 2);
    CHECK(d.log().find(c.says) != std::string::npos);
  }
}

TEST_CASE(
    "pacs2xnatd --check-config creates and writes the directories - and leaves none of "
    "them behind",
    "[hostile][config]") {
  TempDir t("p2x-hostile-cli");
  Daemon d(
      t.path(),
      json{{"paths", {{"state_dir", t.file("new/state")}, {"socket", t.file("newrun/p.sock")}}}});
  const auto before = std::distance(fs::directory_iterator(t.path()), fs::directory_iterator());
  const auto r = check_config(d.config_path());
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "configuration " + d.config_path() + " is valid\n");
  CHECK_FALSE(fs::exists(t.file("new")));
  CHECK_FALSE(fs::exists(t.file("newrun")));
  CHECK(std::distance(fs::directory_iterator(t.path()), fs::directory_iterator()) == before);

  // Existing directories stay, with nothing added to them.
  fs::create_directories(t.file("new/state/spool"));
  fs::create_directories(t.file("newrun"));
  CHECK(check_config(d.config_path()).exit_code == 0);
  CHECK(fs::is_empty(t.file("new/state/spool")));
  CHECK(fs::is_empty(t.file("newrun")));
  CHECK(std::distance(fs::directory_iterator(t.file("new/state")), fs::directory_iterator()) == 1);
}

TEST_CASE(
    "a CSV from standard input: check and submit read '-' and /dev/stdin, pipe or "
    "redirect",
    "[hostile][csv]") {
  Env t;
  Daemon d(t.path(), t.config());
  d.start();
  const std::string csv = t.file("studies.csv");
  write_file(csv, "Accession Number,Subject,Session\nA1,S1,E1\nA2,S2,E2\n");
  for (const std::string& how :
       {"cat " + csv + " | $CLI check -", "$CLI check - < " + csv,
        "cat " + csv + " | $CLI check /dev/stdin", "$CLI check /dev/stdin < " + csv}) {
    INFO(how);
    const auto r = cli_with_input(d, how);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("standard input: 2 rows OK") == 0);
  }
  // Problems are named by line as for a file; nothing piped in is an empty CSV.
  const auto bad = cli_with_input(d, "printf 'Accession Number\\nA*1\\n' | $CLI check -");
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("standard input: line 2, column 1") != std::string::npos);
  CHECK(cli_with_input(d, "$CLI check - < /dev/null").exit_code == 1);
  // More than the daemon accepts: refused while reading, naming the limit.
  const auto big = cli_with_input(d, "yes A1,S1,E1 | head -c 100000000 | $CLI check -");
  CHECK(big.exit_code == 1);
  CHECK(big.err.find("pacs2xnat: standard input holds at least") == 0);
  CHECK(big.err.find("limits.max_request_bytes") != std::string::npos);

  const auto submitted =
      cli_with_input(d, "cat " + csv + " | $CLI submit - -p P --pacs testpacs --json");
  INFO(submitted.err);
  REQUIRE(submitted.exit_code == 0);
  const auto list = json::parse(d.cli({"list", "--json"}).out).at("jobs");
  REQUIRE(list.size() == 1);
  CHECK(list[0].at("csv_name") == "stdin");
  CHECK(list[0].at("total") == 2);
  require_alive_and_serving(d);
}

TEST_CASE("pacs2xnatd --check-config refuses a C-STORE push to its own Storage SCP",
          "[hostile][config]") {
  TempDir t("p2x-hostile-cli");
  Daemon base(t.path());
  json config = json::parse(std::ifstream(base.config_path()));
  const int port = config.at("storage_port").get<int>();
  config["xnat"]["push"] = "cstore";
  config["xnat"]["dicom_host"] = "localhost";
  config["xnat"]["dicom_port"] = port;
  write_file(base.config_path(), config.dump(2));
  const auto r = check_config(base.config_path());
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("pacs2xnatd: " + base.config_path() +
                   ": xnat.dicom_port: the C-STORE push goes to localhost:" + std::to_string(port) +
                   ", which is this daemon's own Storage SCP") == 0);
  config["xnat"]["dicom_port"] = port == 65535 ? port - 1 : port + 1;
  write_file(base.config_path(), config.dump(2));
  CHECK(check_config(base.config_path()).exit_code == 0);
}
