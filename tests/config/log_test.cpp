// Tests for lib/log: journald field sets, levels, scoped fields, redaction and stderr output.
#include "log/log.hpp"

#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

namespace lg = p2x::log;
using FieldMap = std::map<std::string, std::string>;

namespace {

// Initialises logging at `level` and collects every record until destroyed.
class Captured {
 public:
  explicit Captured(const std::string& level = "trace") {
    lg::init("p2x-test", level);
    lg::set_capture([this](const lg::Record& r) { records.push_back(r); });
  }
  ~Captured() { lg::set_capture({}); }
  std::vector<lg::Record> records;
};

lg::Fields all_fields() {
  lg::Fields f;
  f.job_id = 7;
  f.item_id = 12;
  f.accession = "ACC1";
  f.pacs = "main";
  f.project = "PROJ";
  f.subject = "SUBJ01";
  f.session = "SUBJ01_MR1";
  f.state = "retrieving";
  return f;
}

}  // namespace

TEST_CASE("a record carries the journald field set", "[log]") {
  Captured cap;
  lg::info(all_fields(), "study retrieved");
  REQUIRE(cap.records.size() == 1);
  const lg::Record& r = cap.records[0];
  CHECK(r.level == lg::Level::Info);
  CHECK(r.message == "study retrieved");
  CHECK(r.fields == FieldMap{{"MESSAGE", "study retrieved"},
                             {"PRIORITY", "6"},
                             {"SYSLOG_IDENTIFIER", "p2x-test"},
                             {"JOB_ID", "7"},
                             {"ITEM_ID", "12"},
                             {"ACCESSION", "ACC1"},
                             {"PACS", "main"},
                             {"PROJECT", "PROJ"},
                             {"SUBJECT", "SUBJ01"},
                             {"SESSION", "SUBJ01_MR1"},
                             {"STATE", "retrieving"}});
}

TEST_CASE("empty fields are omitted", "[log]") {
  Captured cap;
  lg::Fields f;
  f.job_id = 3;
  f.pacs = "main";
  lg::warn(f, "slow");
  lg::info({}, "plain");
  REQUIRE(cap.records.size() == 2);
  CHECK(cap.records[0].fields == FieldMap{{"MESSAGE", "slow"},
                                          {"PRIORITY", "4"},
                                          {"SYSLOG_IDENTIFIER", "p2x-test"},
                                          {"JOB_ID", "3"},
                                          {"PACS", "main"}});
  CHECK(cap.records[1].fields.size() == 3);
}

TEST_CASE("levels map to syslog priorities and filter records", "[log]") {
  Captured cap("debug");
  lg::trace({}, "t");
  lg::debug({}, "d");
  lg::info({}, "i");
  lg::warn({}, "w");
  lg::error({}, "e");
  lg::write(lg::Level::Critical, {}, "c");
  std::vector<std::string> priorities;
  for (const auto& r : cap.records) priorities.push_back(r.message + r.fields.at("PRIORITY"));
  CHECK(priorities == std::vector<std::string>{"d7", "i6", "w4", "e3", "c2"});

  cap.records.clear();
  lg::set_level("warn");
  lg::info({}, "dropped");
  spdlog::info("dropped too");
  lg::warn({}, "kept");
  REQUIRE(cap.records.size() == 1);
  CHECK(cap.records[0].message == "kept");
}

TEST_CASE("level names", "[log]") {
  CHECK(lg::parse_level("trace") == lg::Level::Trace);
  CHECK(lg::parse_level("WARNING") == lg::Level::Warn);
  CHECK(lg::parse_level("off") == lg::Level::Off);
  CHECK_THROWS_AS(lg::parse_level("verbose"), std::invalid_argument);
  CHECK_THROWS_AS(lg::init("x", "loud"), std::invalid_argument);
  CHECK(std::string(lg::level_name(lg::Level::Error)) == "error");
}

TEST_CASE("scoped fields reach direct spdlog calls and call fields override them", "[log]") {
  Captured cap;
  {
    lg::Fields scoped;
    scoped.job_id = 1;
    scoped.item_id = 2;
    scoped.state = "querying";
    lg::ScopedFields guard(scoped);
    spdlog::info("C-FIND returned {} studies", 1);
    lg::Fields call;
    call.state = "retrieving";
    call.accession = "A9";
    lg::info(call, "moving");
  }
  spdlog::info("outside");
  REQUIRE(cap.records.size() == 3);
  CHECK(cap.records[0].message == "C-FIND returned 1 studies");
  CHECK(cap.records[0].fields.at("JOB_ID") == "1");
  CHECK(cap.records[0].fields.at("STATE") == "querying");
  CHECK(cap.records[1].fields.at("ITEM_ID") == "2");
  CHECK(cap.records[1].fields.at("STATE") == "retrieving");
  CHECK(cap.records[1].fields.at("ACCESSION") == "A9");
  CHECK(cap.records[2].fields.count("JOB_ID") == 0);
  CHECK(cap.records[2].fields.size() == 3);
}

TEST_CASE("fields are per thread", "[log]") {
  Captured cap;
  lg::Fields scoped;
  scoped.job_id = 99;
  lg::ScopedFields guard(scoped);
  std::thread other([] { spdlog::info("from other thread"); });
  other.join();
  spdlog::info("from this thread");
  REQUIRE(cap.records.size() == 2);
  CHECK(cap.records[0].fields.count("JOB_ID") == 0);
  CHECK(cap.records[1].fields.at("JOB_ID") == "99");
}

TEST_CASE("secrets are redacted in messages and fields", "[log]") {
  Captured cap;
  lg::add_secret("s3cr3t-pass");
  lg::add_secret("s3cr3t");
  lg::add_secret("");
  lg::Fields f;
  f.subject = "x-s3cr3t-pass-y";
  lg::error(f, "login with s3cr3t-pass failed; s3cr3t again");
  spdlog::warn("direct: {}", "s3cr3ts3cr3t");
  REQUIRE(cap.records.size() == 2);
  CHECK(cap.records[0].message == "login with *** failed; *** again");
  CHECK(cap.records[0].fields.at("MESSAGE") == "login with *** failed; *** again");
  CHECK(cap.records[0].fields.at("SUBJECT") == "x-***-y");
  CHECK(cap.records[1].message == "direct: ******");
  CHECK(lg::redact("no secrets here") == "no secrets here");
}

TEST_CASE("readable form shows the fields", "[log]") {
  lg::Record r;
  r.level = lg::Level::Warn;
  r.message = "message";
  r.fields = {{"JOB_ID", "7"}, {"ITEM_ID", "12"}, {"ACCESSION", "ACC1"}, {"MESSAGE", "message"}};
  CHECK(lg::format_text(r) == "[warn] [job 7 item 12 acc=ACC1] message");
  r.fields = {{"PACS", "main"}, {"SUBJECT", "Jane Doe"}, {"STATE", "failed"}};
  CHECK(lg::format_text(r) == "[warn] [pacs=main subject=\"Jane Doe\" state=failed] message");
  r.fields.clear();
  CHECK(lg::format_text(r) == "[warn] message");
}

TEST_CASE("without journald records go to stderr in readable form", "[log]") {
  unsetenv("JOURNAL_STREAM");
  std::string path = std::string(P2X_BINARY_DIR) + "/tests/config/log_stderr.txt";
  std::fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  dup2(fd, STDERR_FILENO);
  close(fd);

  lg::init("p2x-test", "info");
  lg::add_secret("topsecret");
  lg::Fields f;
  f.job_id = 7;
  f.item_id = 12;
  f.accession = "ACC1";
  lg::info(f, "pushed with topsecret");
  lg::debug(f, "not shown");
  spdlog::default_logger()->flush();

  std::fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);

  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string out = text.str();
  CHECK_THAT(out, Catch::Contains("[info] [job 7 item 12 acc=ACC1] pushed with ***\n"));
  CHECK_THAT(out, !Catch::Contains("topsecret"));
  CHECK_THAT(out, !Catch::Contains("not shown"));
  // "YYYY-MM-DD HH:MM:SS.mmm " prefix
  REQUIRE(out.size() > 24);
  CHECK(out[4] == '-');
  CHECK(out[10] == ' ');
  CHECK(out[19] == '.');
}

TEST_CASE("journald is detected through JOURNAL_STREAM matching stderr", "[log]") {
  struct stat st {};
  REQUIRE(fstat(STDERR_FILENO, &st) == 0);
  std::string match = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  setenv("JOURNAL_STREAM", match.c_str(), 1);
  CHECK(lg::stderr_is_journal());
  std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  setenv("JOURNAL_STREAM", other.c_str(), 1);
  CHECK_FALSE(lg::stderr_is_journal());
  setenv("JOURNAL_STREAM", "garbage", 1);
  CHECK_FALSE(lg::stderr_is_journal());
  unsetenv("JOURNAL_STREAM");
  CHECK_FALSE(lg::stderr_is_journal());
}
