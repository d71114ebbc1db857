#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ipc/client.hpp"

namespace p2x::test {

namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

[[noreturn]] void exec_child(const std::vector<std::string>& argv,
                             const std::vector<std::string>& extra_env) {
  for (const auto& kv : extra_env) putenv(const_cast<char*>(strdup(kv.c_str())));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

}  // namespace

std::string make_temp_dir(const std::string& prefix) {
  std::string templ = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  chmod(templ.c_str(), 0755);
  return templ;
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void write_file(const std::string& path, const std::string& bytes, unsigned mode) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  chmod(path.c_str(), mode);
}

CommandResult run_program(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env, uid_t run_as) {
  std::string dir = make_temp_dir("p2x-run");
  std::string out_path = dir + "/out", err_path = dir + "/err";
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    dup2(out, 1);
    dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    if (run_as != static_cast<uid_t>(-1)) {
      gid_t g = run_as;
      if (setgroups(0, nullptr) != 0 || setgid(g) != 0 || setuid(run_as) != 0) _exit(126);
    }
    exec_child(argv, extra_env);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  remove_tree(dir);
  return r;
}

Daemon::Daemon(const std::string& dir, nlohmann::json config)
    : dir_(dir),
      state_dir_(dir + "/state"),
      socket_(dir + "/run/pacs2xnatd.sock"),
      config_path_(dir + "/pacs2xnat.json"),
      log_path_(dir + "/daemon.log") {
  write_file(dir + "/xnat.credentials", "admin:admin\n", 0600);
  nlohmann::json base = {
      {"ae_title", "P2XTEST"},
      {"storage_port", free_port()},
      {"paths", {{"state_dir", state_dir_}, {"socket", socket_}}},
      {"pacs",
       {{{"name", "testpacs"}, {"ae_title", "TESTPACS"}, {"host", "127.0.0.1"}, {"port", 9}}}},
      {"xnat", {{"url", "http://127.0.0.1:9"}, {"credentials_file", dir + "/xnat.credentials"}}}};
  base.merge_patch(config);
  write_file(config_path_, base.dump(2));
}

Daemon::~Daemon() {
  if (pid_ > 0) kill_hard();
}

void Daemon::start() {
  pid_ = fork();
  if (pid_ == 0) {
    int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log, 1);
    dup2(log, 2);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    if (fd_limit_ > 0) {
      const rlimit files{static_cast<rlim_t>(fd_limit_), static_cast<rlim_t>(fd_limit_)};
      if (setrlimit(RLIMIT_NOFILE, &files) != 0) _exit(126);
    }
    exec_child({P2X_DAEMON_BIN, "--config", config_path_}, env_);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      last_exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      throw std::runtime_error("daemon exited during start-up (" + std::to_string(last_exit_) +
                               "):\n" + log());
    }
    try {
      auto r = ipc::call(socket_, "ping", nlohmann::json::object(), 2);
      // Only this daemon's answer counts (another one may hold the socket).
      if (r.value("ok", false) && r["result"].value("pid", 0) == pid_) return;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill_hard();
  throw std::runtime_error("daemon did not answer on " + socket_ + " within 20 s:\n" + log());
}

void Daemon::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  last_exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  pid_ = -1;
}

void Daemon::kill_hard() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  last_exit_ = 128 + SIGKILL;
  pid_ = -1;
}

std::string Daemon::log() const {
  return slurp(log_path_);
}

CommandResult Daemon::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{P2X_CLI_BIN, "--socket", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv);
}

}  // namespace p2x::test
