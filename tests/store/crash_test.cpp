// Crash safety: a process killed in the middle of create_job leaves the job whole or absent.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "store/store.hpp"
#include "test_util.hpp"

using namespace p2x::store;
using p2x::store::test::make_job;
using p2x::store::test::RawDb;
using p2x::store::test::TempDir;

namespace {

// Forks a child that opens the store and creates `job`; SIGKILLs it `delay` after it reports
// that create_job is about to start (or lets it finish if delay is negative). Returns the
// time from that report until the child was gone.
std::chrono::microseconds run_child(const std::string& path, const NewJob& job,
                                    std::chrono::microseconds delay) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    int rc = 0;
    try {
      Store store(path);
      char c = 'x';
      if (::write(fds[1], &c, 1) != 1) ::_exit(3);
      store.create_job(job);
    } catch (...) {
      rc = 2;
    }
    ::_exit(rc);
  }
  ::close(fds[1]);
  char c = 0;
  REQUIRE(::read(fds[0], &c, 1) == 1);
  const auto t0 = std::chrono::steady_clock::now();
  ::close(fds[0]);
  if (delay.count() >= 0) {
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  const auto took =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  if (!WIFSIGNALED(status)) {
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  return took;
}

// Opens the store left behind and checks that the job is absent or whole; returns whether it
// is present.
bool check_store(const std::string& path, int items) {
  Store store(path);
  auto jobs = store.jobs();
  REQUIRE(jobs.size() <= 1);
  if (!jobs.empty()) {
    CHECK(store.summary(jobs[0].id).total == items);
    CHECK(store.items(jobs[0].id).size() == static_cast<std::size_t>(items));
  }
  RawDb raw(path);
  CHECK(raw.query_text("PRAGMA integrity_check") == "ok");
  CHECK(raw.query_int("SELECT count(*) FROM items") == (jobs.empty() ? 0 : items));
  return !jobs.empty();
}

}  // namespace

TEST_CASE("a crash during create_job leaves the job whole or absent", "[store][crash]") {
  constexpr int kItems = 50000;
  const NewJob job = make_job(kItems);  // built once, inherited by every child
  // First an undisturbed run, to learn how long create_job takes here.
  std::chrono::microseconds full{};
  {
    TempDir dir;
    const auto path = dir.file("jobs.db");
    { Store init(path); }  // schema in place, so the child spends its time in create_job
    full = run_child(path, job, std::chrono::microseconds(-1));
    REQUIRE(check_store(path, kItems));
  }
  // Then kills spread over that time and a little beyond, so some land before, some around
  // and some after the commit.
  int absent = 0, whole = 0;
  for (int percent : {0, 30, 60, 90, 100, 120}) {
    const auto delay = full * percent / 100;
    INFO("killed after " << delay.count() << " us of " << full.count());
    TempDir dir;
    const auto path = dir.file("jobs.db");
    { Store init(path); }
    run_child(path, job, delay);
    (check_store(path, kItems) ? whole : absent) += 1;
  }
  WARN("create_job (" << full.count() / 1000 << " ms) killed 6 times: " << absent
                      << " left no job, " << whole << " a whole job");
  CHECK(absent >= 1);  // a kill at 0% always lands before the commit
}
