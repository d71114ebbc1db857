// A job whose stored options cannot be used (written by an older daemon or by hand, issue 12
// item 9): the real daemon fails its items at once with a reason naming the option, instead
// of retrying them or leaving them in flight.
#include <filesystem>
#include <thread>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "ipc/client.hpp"
#include "store/store.hpp"
#include "support/temp_dir.hpp"

using nlohmann::json;

namespace {

// Job 1 on PACS testpacs with one accession row and `options_json`, written into the store
// the daemon will open.
void store_job(const p2x::test::Daemon& d, const std::string& options_json) {
  std::filesystem::create_directories(d.state_dir());
  p2x::store::Store store(d.state_dir() + "/pacs2xnat.db");
  p2x::store::NewJob job;
  job.project = "PROJ";
  job.pacs = "testpacs";
  job.csv_name = "s.csv";
  job.csv_sha256 = std::string(64, '0');
  job.options_json = options_json;
  p2x::store::NewItem it;
  it.row = 1;
  it.line = 2;
  it.kind = p2x::domain::RowKind::Accession;
  it.accession = "A1";
  it.subject = "S1";
  it.session = "E1";
  job.items.push_back(it);
  REQUIRE(store.create_job(job) == 1);
}

json item_when_failed(const p2x::test::Daemon& d, std::chrono::seconds within) {
  const auto until = std::chrono::steady_clock::now() + within;
  json item;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    item = p2x::ipc::call(d.socket(), "items", {{"job", 1}}).at("result").at("items").at(0);
  } while (item.at("state") != "failed" && std::chrono::steady_clock::now() < until);
  return item;
}

}  // namespace

TEST_CASE("a job stored with unusable options fails its items naming the option",
          "[service][options]") {
  p2x::test::TempDir t("p2x-stored-options");
  p2x::test::Daemon d(t.path());
  store_job(d, R"({"series_description":5,"strict":true})");
  d.start();
  json item = item_when_failed(d, std::chrono::seconds(15));
  INFO(item.dump() << "\n" << d.log().substr(0, 4000));
  CHECK(item.at("state") == "failed");
  CHECK(item.at("retryable") == false);
  CHECK(item.at("last_error") ==
        "the job's stored options cannot be used: \"series_description\" must be text, not "
        "number; cancel the job and submit its CSV again");
  // Still failed after a restart, and the daemon answers.
  d.kill_hard();
  d.start();
  CHECK(p2x::ipc::call(d.socket(), "items", {{"job", 1}})
            .at("result")
            .at("items")
            .at(0)
            .at("state") == "failed");
}
