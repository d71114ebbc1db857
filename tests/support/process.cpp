// Child processes for test fixtures (see process.hpp).
#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace p2x::test {

namespace {

std::string resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = p.find(':', start);
    const std::string dir = p.substr(start, end == std::string::npos ? end : end - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  throw std::runtime_error("process: '" + name + "' not found in PATH");
}

}  // namespace

pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) throw std::invalid_argument("process: empty argv");
  const std::string exe = resolve(argv[0]);

  // Everything the child needs is prepared before fork (only async-signal-safe calls after).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "TCP_NODELAY=", 12) != 0) env_store.emplace_back(*e);
  if (options.tcp_nodelay) env_store.emplace_back("TCP_NODELAY=1");
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  const std::string log = options.log_path.empty() ? "/dev/null" : options.log_path;
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0)
    throw std::runtime_error("process: cannot open " + log + ": " + std::strerror(errno));
  const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(out);
    if (in >= 0) ::close(in);
    throw std::runtime_error(std::string("process: fork failed: ") + std::strerror(err));
  }
  if (pid == 0) {
    if (options.own_process_group) ::setpgid(0, 0);
    if (options.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
    }
    if (in >= 0) ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execve(exe.c_str(), args.data(), envp.data());
    const char msg[] = "process: execve failed\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  if (options.own_process_group) ::setpgid(pid, pid);  // no race with the first kill(-pid)
  ::close(out);
  if (in >= 0) ::close(in);
  return pid;
}

int run(const std::vector<std::string>& argv, const SpawnOptions& options, int timeout_ms) {
  const pid_t pid = spawn(argv, options);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(options.own_process_group ? -pid : pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string file_tail(const std::string& path, std::size_t max_bytes) {
  std::ifstream is(path, std::ios::binary | std::ios::ate);
  if (!is) return "";
  const std::streamoff size = is.tellg();
  const std::streamoff start =
      size > std::streamoff(max_bytes) ? size - std::streamoff(max_bytes) : 0;
  is.seekg(start);
  std::string s(static_cast<std::size_t>(size - start), '\0');
  is.read(s.data(), static_cast<std::streamsize>(s.size()));
  return s;
}

}  // namespace p2x::test
