// Verification with several pushers, against the real peers (issue 11): every item is verified
// by one request sequence, a job is done only once its spool is empty, and SIGHUP reloads while
// workers run leave every study verified and uploaded once.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// n studies of 1 series x `instances` small (32 x 32) MR images each.
std::vector<StudySpec> small_studies(int n, int instances, const std::string& prefix) {
  auto specs = uniform_corpus(n, 1, instances, "MR", prefix);
  for (auto& s : specs) s.rows = s.cols = 32;
  return specs;
}

WorldOptions with_pushers(int max_pushes, std::vector<StudySpec> studies) {
  WorldOptions o;
  o.studies = std::move(studies);
  o.config = {{"xnat", {{"max_pushes", max_pushes}}}};
  return o;
}

std::vector<int> study_range(int first, int count) {
  std::vector<int> idx(static_cast<std::size_t>(count));
  std::iota(idx.begin(), idx.end(), first);
  return idx;
}

// The stand-in's request log once the daemon stopped asking: no new request for a second (the
// log as it is after 10 s otherwise).
json settled_requests(World& w) {
  json reqs = w.xnat().admin("GET", "/_admin/requests")["requests"];
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    json again = w.xnat().admin("GET", "/_admin/requests")["requests"];
    if (again.size() == reqs.size()) return again;
    reqs = std::move(again);
  }
  return reqs;
}

// Per session label: the GET requests about the session that arrived after the stand-in had
// answered the session's first successful upload (a POST about it answered 200). Whatever the
// daemon asks to verify an upload, this counts all of it, and nothing it asked before.
std::map<std::string, int> gets_after_upload(const json& requests) {
  std::map<std::string, std::int64_t> uploaded_at;
  for (const auto& r : requests) {  // in answer order: the first 200 wins
    if (r["method"] == "POST" && r["status"] == 200 && r["session"].is_string()) {
      uploaded_at.emplace(r["session"].get<std::string>(), r["answered_seq"].get<std::int64_t>());
    }
  }
  std::map<std::string, int> gets;
  for (const auto& [session, at] : uploaded_at) gets[session] = 0;
  for (const auto& r : requests) {
    if (r["method"] != "GET" || !r["session"].is_string()) continue;
    auto up = uploaded_at.find(r["session"].get<std::string>());
    if (up != uploaded_at.end() && r["seq"].get<std::int64_t>() > up->second) ++gets[up->first];
  }
  return gets;
}

// Per item id: the daemon's log lines "[info] [job J item I ...] verified ...".
std::map<std::int64_t, int> verified_lines(const std::string& log) {
  static const std::regex line(R"(\[job \d+ item (\d+)[^\]\n]*\] verified )");
  std::map<std::int64_t, int> out;
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    ++out[std::stoll((*it)[1].str())];
  }
  return out;
}

int count_occurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// Checks that every study `idx` got exactly `k` verification requests and its item exactly one
// "verified" log line; lists the ones that did not.
void check_verified_by_one_sequence(World& w, int job, const std::vector<int>& idx, int k) {
  auto gets = gets_after_upload(settled_requests(w));
  std::ostringstream sessions;
  int wrong_sessions = 0;
  for (int i : idx) {
    std::string label = session_label(w.studies().at(static_cast<std::size_t>(i)));
    if (gets[label] == k) continue;
    ++wrong_sessions;
    sessions << label << ": " << gets[label] << " verification requests, not " << k << "\n";
  }
  {
    INFO(sessions.str());
    CHECK(wrong_sessions == 0);
  }
  auto lines = verified_lines(w.daemon().log());
  std::ostringstream items;
  int wrong_items = 0;
  for (std::int64_t id : w.item_ids(job)) {
    if (lines[id] == 1) continue;
    ++wrong_items;
    items << "item " << id << ": " << lines[id] << " \"verified\" log lines\n";
  }
  INFO(items.str());
  CHECK(wrong_items == 0);
}

// One look at a job when it stopped being active: its status and the files then in the spool
// directories of its items; whether the files were seen there while it ran.
struct FinishMoment {
  json status;
  std::vector<std::string> left;
  bool saw_spool = false;
};

// Polls the job's state and then its items' spool directories every millisecond until the job is no
// longer active. The spool is read after the poll that saw the job finished, and files only go
// away once a job is finished, so a file read then was there when the job turned done.
FinishMoment watch_until_finished(World& w, int job, int timeout_s) {
  const auto ids = w.item_ids(job);
  FinishMoment m;
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (Clock::now() < deadline) {
    json st = w.status(job);
    auto files = w.spool_item_files(ids);
    if (st["state"] != "active") {
      m.status = st;
      m.left = files;
      return m;
    }
    if (!files.empty()) m.saw_spool = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  FAIL("job " << job << " still active after " << timeout_s << " s");
  return m;
}

// A CSV with the studies `idx`, each into the session session_label + suffix.
std::string repeat_csv(const World& w, const std::vector<int>& idx, const std::string& suffix) {
  std::ostringstream s;
  s << "Accession Number,Subject,Session\n";
  for (int i : idx) {
    const auto& st = w.studies().at(static_cast<std::size_t>(i));
    s << st.spec.accession << "," << subject_label(st) << "," << session_label(st) + suffix << "\n";
  }
  return s.str();
}

// World::check_verified_once for a job made by repeat_csv.
void check_uploaded_once(World& w, int job, const std::vector<int>& idx,
                         const std::string& suffix) {
  json st = w.status(job);
  INFO(st.dump(2));
  CHECK(st["counts"]["verified"] == static_cast<int>(idx.size()));
  auto uploads = w.xnat().uploads_per_session();
  for (int i : idx) {
    const auto& s = w.studies().at(static_cast<std::size_t>(i));
    std::string key = "PROJ/" + subject_label(s) + "/" + session_label(s) + suffix;
    INFO(key);
    CHECK(uploads[key] == 1);
  }
  for (const auto& it : w.items(job)) {
    CHECK(it["state"] == "verified");
    CHECK(it["received"] == it["expected"]);
    CHECK(it["verified"] == it["expected"]);
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Limits for the i-th reload: each set differs from the start-up limits and from the one
// before, and none of them stops the work (the spool limits stay far from what the job uses).
json reloaded_limits(int i) {
  return {{"max_attempts", 6 + i},
          {"backoff_initial_s", 1 + i % 2},
          {"backoff_max_s", 5 + i},
          {"circuit_failures", 4 + i % 3},
          {"circuit_probe_s", 1 + i % 3},
          {"spool_min_free_mb", 9 - i % 4},
          {"spool_max_mb", i % 2 ? 4096 : 0},
          {"study_max_mb", 19000 + i},
          {"drain_timeout_s", 30 + i}};
}

// Rewrites the daemon's config with reloaded_limits(i) (and the PACS's association limit, which
// the gate reloads, and the log level), sends SIGHUP and waits until the daemon has logged
// reload i + 1.
void reload_with_new_limits(World& w, int i) {
  const std::string path = w.daemon().config_path();
  json cfg = json::parse(read_text(path));
  cfg["limits"].merge_patch(reloaded_limits(i));
  cfg["pacs"][0]["max_associations"] = 1 + (i + 1) % 2;
  cfg["log_level"] = i % 2 ? "debug" : "info";
  write_file(path + ".tmp", cfg.dump(2));
  REQUIRE(std::rename((path + ".tmp").c_str(), path.c_str()) == 0);
  REQUIRE(kill(w.daemon().pid(), SIGHUP) == 0);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (count_occurrences(w.daemon().log(), "SIGHUP") < i + 1) {
    INFO(w.daemon().log());
    REQUIRE(Clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

TEST_CASE("with 4 pushers and 50 items, every item is verified by exactly one request sequence",
          "[e2e][verify]") {
  // The reference: what one pusher asks XNAT to verify one study of the same shape.
  int k = 0;
  {
    World ref(with_pushers(1, small_studies(1, 2, "REF")));
    int job = ref.submit(ref.write_csv("ref.csv", ref.accession_csv({0})));
    CHECK(ref.wait_done(job)["state"] == "done");
    ref.check_verified_once(job, {0});
    k = gets_after_upload(settled_requests(ref))[session_label(ref.studies()[0])];
    INFO(ref.daemon().log());
    REQUIRE(k > 0);
    check_verified_by_one_sequence(ref, job, {0}, k);
  }
  constexpr int kItems = 50;
  World w(with_pushers(4, small_studies(kItems, 2, "VER")));
  const auto all = study_range(0, kItems);
  int job = w.submit(w.write_csv("all.csv", w.accession_csv(all)));
  CHECK(w.wait_done(job, 240)["state"] == "done");
  w.check_verified_once(job, all);
  CHECK(w.spool_files().empty());
  check_verified_by_one_sequence(w, job, all, k);
}

TEST_CASE("at the moment a job turns done its spool directories are already empty",
          "[e2e][verify]") {
  // The same studies in every job, each time into new sessions, so the studies can be larger
  // without loading 100 of them into the PACS: a spool directory of 100 files takes long enough
  // to remove that two verifiers of one item can overlap in it, which with a few files they
  // rarely do.
  constexpr int kJobs = 20, kItems = 5, kInstances = 100;
  World w(with_pushers(4, small_studies(kItems, kInstances, "SPL")));
  const auto idx = study_range(0, kItems);
  int jobs_seen_with_spool = 0;
  for (int j = 0; j < kJobs; ++j) {
    const std::string suffix = "_R" + std::to_string(j + 1);
    int job = w.submit(w.write_csv("job" + std::to_string(j) + ".csv", repeat_csv(w, idx, suffix)));
    FinishMoment m = watch_until_finished(w, job, 120);
    std::ostringstream left;
    for (const auto& f : m.left) left << f << "\n";
    INFO("repetition " << j + 1 << " of " << kJobs << ", job " << job << "; " << m.left.size()
                       << " file(s) in the spool when it turned " << m.status["state"] << ":\n"
                       << left.str().substr(0, 2000));
    CHECK(m.status["state"] == "done");
    CHECK(m.left.empty());
    check_uploaded_once(w, job, idx, suffix);
    if (m.saw_spool) ++jobs_seen_with_spool;
  }
  // The probe looks where the studies are: it saw their files while the jobs ran.
  CHECK(jobs_seen_with_spool > 0);
}

TEST_CASE("SIGHUP reload while workers run", "[e2e][verify][reload]") {
  constexpr int kItems = 20, kReloads = 6;
  World w(with_pushers(2, small_studies(kItems, 2, "HUP")));
  // Each upload takes 200 ms longer: with 2 pushers the job runs for 2 s at least, so the
  // reloads fall while studies are being retrieved and pushed.
  w.xnat().admin("POST", "/_admin/delay?ms=200&count=" + std::to_string(kItems) +
                             "&path=/data/services/import");
  const auto all = study_range(0, kItems);
  int job = w.submit(w.write_csv("all.csv", w.accession_csv(all)));
  int reloads_while_active = 0;
  for (int i = 0; i < kReloads; ++i) {
    json st = w.status(job);
    if (st["state"] == "active" && st["counts"]["verified"] < kItems) ++reloads_while_active;
    reload_with_new_limits(w, i);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(reloads_while_active >= kReloads / 2);
  CHECK(w.wait_done(job, 180)["state"] == "done");
  w.check_verified_once(job, all);
  CHECK(w.spool_files().empty());
  const std::string log = w.daemon().log();
  INFO(log.substr(log.size() > 8000 ? log.size() - 8000 : 0));
  CHECK(count_occurrences(log, "SIGHUP") == kReloads);
  CHECK(log.find("reload failed") == std::string::npos);
  CHECK(log.find("ThreadSanitizer") == std::string::npos);
}
