// The XNAT door of the real daemon, attacked (issue 21, items 2 and 5): a man in the middle
// (HostileHttp) between pacs2xnatd and the XNAT stand-in answers some requests with what a
// broken or hostile XNAT sends, and forwards the rest. A session document nested 100,000 levels
// deep crashed the daemon (DCMTK's XML parser) and then failed the row at once; an experiment
// listing of garbage was taken as "no session" and the study pushed on it. Now neither is read
// as anything: the row waits, nothing is uploaded on garbage, and once XNAT answers properly
// the study is verified, once, by itself.
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "hostile_http.hpp"
#include "ipc/client.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Waits until `done` holds (false after timeout_s).
template <class F>
bool eventually(F done, int timeout_s) {
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// A World whose daemon talks to the stand-in through `mitm`.
WorldOptions through(const HostileHttp& mitm, int studies) {
  WorldOptions o;
  o.studies = uniform_corpus(studies, 2, 3, "MR", "MITM");
  o.config = {{"xnat", {{"url", mitm.url()}}}};
  return o;
}

void require_alive(World& w) {
  int status = 0;
  REQUIRE(waitpid(w.daemon().pid(), &status, WNOHANG) == 0);
  const json pong = p2x::ipc::call(w.daemon().socket(), "ping", json::object(), 5);
  CHECK(pong.value("ok", false));
}

}  // namespace

TEST_CASE(
    "XNAT door: session documents nested 100,000 levels deep - the daemon stays up, the "
    "row waits, and is verified once XNAT answers properly",
    "[hostile][xnat]") {
  std::atomic<int> bad_left{0};
  const std::string deep[] = {nested_declarations(100000), nested_in_instruction(100000)};
  HostileHttp mitm([&](const HttpExchange& ex) -> std::optional<HttpAnswer> {
    const bool document = ex.method == "GET" &&
                          starts_with(ex.target, "/data/prearchive/projects/PROJ/") &&
                          ex.target.find("format=xml") != std::string::npos;
    if (!document || bad_left.load() <= 0) return std::nullopt;
    const int n = bad_left--;
    return HttpAnswer{200, "text/xml", deep[n % 2], {}};
  });
  World w(through(mitm, 1));
  mitm.set_upstream(w.xnat().port());
  w.xnat().admin("POST", "/_admin/prearchive_code?project=PROJ&code=0");  // review: prearchive
  bad_left = 4;
  const int job = w.submit(w.write_csv("deep.csv", w.accession_csv({0})));
  REQUIRE(eventually([&] { return bad_left.load() <= 0; }, 120));
  require_alive(w);
  const json item = w.items(job)[0];
  CHECK(item["state"] != "failed");
  w.wait_done(job, 120);
  w.check_verified_once(job, {0});
  CHECK(w.items(job)[0]["attempts"] == 0);  // verification waited, it drew no verdict
  const std::string log = w.daemon().log();
  const auto said = log.find("XNAT returned a session document that ");
  REQUIRE(said != std::string::npos);
  INFO(log.substr(said, 300));
  CHECK(log.find("verification query failed: XNAT returned a session document") !=
        std::string::npos);
}

TEST_CASE(
    "XNAT door: an experiment listing of garbage is no 'session absent' - nothing is "
    "pushed on it, the study is pushed once XNAT answers properly",
    "[hostile][xnat]") {
  std::atomic<bool> garbage{true};
  std::atomic<int> served{0};
  HostileHttp mitm([&](const HttpExchange& ex) -> std::optional<HttpAnswer> {
    if (!garbage.load() || ex.method != "GET" ||
        !starts_with(ex.target, "/data/projects/PROJ/experiments") ||
        ex.target.find("label=") == std::string::npos)
      return std::nullopt;
    ++served;
    // Valid JSON, but no row is an experiment: not "no such session".
    return HttpAnswer{200,
                      "application/json",
                      R"({"ResultSet":{"Result":[{"garbage":"yes"}],"totalRecords":"1"}})",
                      {}};
  });
  World w(through(mitm, 2));
  mitm.set_upstream(w.xnat().port());
  const int job = w.submit(w.write_csv("garbage.csv", w.accession_csv({0, 1})));
  // Both studies have reached the push (their listing was asked) and found garbage: twice.
  REQUIRE(eventually([&] { return served.load() >= 4; }, 120));
  require_alive(w);
  CHECK(w.xnat().uploads_per_session().empty());  // nothing pushed on garbage
  for (const auto& item : w.items(job)) {
    INFO(item.dump(2));
    CHECK(item["state"] != "failed");
    CHECK(item["last_error"].get<std::string>().find("experiment listing") != std::string::npos);
  }
  garbage = false;
  w.wait_done(job, 120);
  w.check_verified_once(job, {0, 1});
}
