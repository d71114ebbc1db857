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
// that create_job is about to start (or lets it finish if delay is negative).
// Returns true if the child was still running when killed.
bool run_child(const std::string& path, const NewJob& job, std::chrono::microseconds delay) {
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
  ::close(fds[0]);
  bool killed = false;
  if (delay.count() >= 0) {
    std::this_thread::sleep_for(delay);
    killed = ::kill(pid, SIGKILL) == 0;
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) return killed;
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return false;
}

}  // namespace

TEST_CASE("a crash during create_job leaves the job whole or absent", "[store][crash]") {
  constexpr int kItems = 50000;
  const NewJob job = make_job(kItems);  // built once, inherited by every child
  int absent = 0, whole = 0;
  const int delays_us[] = {0, 2000, 10000, 30000, 60000, 100000, 200000, -1};
  for (int d : delays_us) {
    TempDir dir;
    const auto path = dir.file("jobs.db");
    { Store init(path); }  // schema in place, so the child spends its time in create_job
    run_child(path, job, std::chrono::microseconds(d));
    Store store(path);
    auto jobs = store.jobs();
    INFO("delay " << d << " us");
    REQUIRE(jobs.size() <= 1);
    if (jobs.empty()) {
      ++absent;
    } else {
      ++whole;
      CHECK(store.summary(jobs[0].id).total == kItems);
      CHECK(store.items(jobs[0].id).size() == static_cast<std::size_t>(kItems));
    }
    RawDb raw(path);
    CHECK(raw.query_text("PRAGMA integrity_check") == "ok");
    CHECK(raw.query_int("SELECT count(*) FROM items") == (jobs.empty() ? 0 : kItems));
  }
  // Delay 0 kills before the commit; no kill at all lets it finish: both outcomes are seen.
  CHECK(absent >= 1);
  CHECK(whole >= 1);
}
