// Test harness: runs the real pacs2xnatd and pacs2xnat binaries in a temporary directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/ports.hpp"

namespace p2x::test {

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs a program to completion (fork/execv), capturing stdout and stderr.
CommandResult run_program(const std::vector<std::string>& argv,
                          const std::vector<std::string>& extra_env = {},
                          uid_t run_as = static_cast<uid_t>(-1));

std::string make_temp_dir(const std::string& prefix);
void remove_tree(const std::string& path);
void write_file(const std::string& path, const std::string& bytes, unsigned mode = 0644);

// A daemon under test with its own state dir, socket and config.
class Daemon {
 public:
  // `config` is merged over a minimal valid config (one PACS "testpacs", XNAT at 127.0.0.1:9).
  explicit Daemon(const std::string& dir, nlohmann::json config = nlohmann::json::object());
  ~Daemon();
  void start();      // starts and waits until the socket answers ping
  void stop();       // SIGTERM and wait; returns the exit status in last_exit()
  void kill_hard();  // SIGKILL and wait
  bool running() const { return pid_ > 0; }
  int last_exit() const { return last_exit_; }
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& config_path() const { return config_path_; }
  std::string log() const;  // the daemon's stderr so far
  // Extra environment ("NAME=value") for the next start().
  void set_env(std::vector<std::string> env) { env_ = std::move(env); }
  // The open-file limit (RLIMIT_NOFILE, soft and hard) of the next start()'s daemon; 0: inherited.
  void set_fd_limit(unsigned long limit) { fd_limit_ = limit; }
  // Runs the CLI against this daemon.
  CommandResult cli(const std::vector<std::string>& args) const;

 private:
  std::string dir_, state_dir_, socket_, config_path_, log_path_;
  pid_t pid_ = -1;
  int last_exit_ = -1;
  std::vector<std::string> env_;
  unsigned long fd_limit_ = 0;
};

}  // namespace p2x::test
