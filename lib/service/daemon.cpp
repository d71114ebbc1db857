#include "service/daemon.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>

#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "service/commands.hpp"
#include "store/store.hpp"

namespace p2x::service {

namespace fs = std::filesystem;

namespace {

void make_private_dir(const std::string& path, const char* what) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    throw std::runtime_error(std::string("cannot create ") + what + " " + path + ": " +
                             ec.message());
  }
}

}  // namespace

int run_daemon(const DaemonOptions& options) {
  config::Config cfg;
  try {
    cfg = config::load_file(options.config_path);
  } catch (const std::exception& e) {
    std::cerr << "pacs2xnatd: " << e.what() << "\n";
    return 2;
  }
  if (!options.state_dir.empty()) {
    bool spool_default = cfg.paths.spool_dir == cfg.paths.state_dir + "/spool";
    cfg.paths.state_dir = options.state_dir;
    if (spool_default) cfg.paths.spool_dir = cfg.paths.state_dir + "/spool";
  }
  if (!options.socket_path.empty()) cfg.paths.socket = options.socket_path;
  if (options.check_only) {
    std::cout << "configuration " << options.config_path << " is valid\n";
    return 0;
  }

  log::init("pacs2xnatd", cfg.log_level);

  // Signals are handled synchronously on this thread (sigwait), never in a handler; block them
  // before any thread starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  umask(0027);

  try {
    make_private_dir(cfg.paths.state_dir, "state directory");
    make_private_dir(cfg.paths.spool_dir, "spool directory");
    make_private_dir(fs::path(cfg.paths.socket).parent_path().string(), "socket directory");

    store::Store store(cfg.paths.state_dir + "/pacs2xnat.db");
    if (store.recovered() > 0) {
      spdlog::warn("recovered {} item(s) left in flight by the previous run", store.recovered());
    }

    ipc::Dispatcher dispatcher;
    Context ctx{cfg, store, {}};
    register_commands(dispatcher, ctx);
    ipc::Server server(cfg.paths.socket, dispatcher,
                       static_cast<std::size_t>(cfg.limits.max_request_bytes));
    spdlog::info("pacs2xnatd ready: store {}, socket {}", cfg.paths.state_dir, cfg.paths.socket);
    sd_notify(0, "READY=1\nSTATUS=ready");

    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading limits from {}", options.config_path);
        sd_notify(0, "RELOADING=1");
        try {
          config::Config fresh = config::load_file(options.config_path);
          cfg.limits = fresh.limits;
        } catch (const std::exception& e) {
          spdlog::error("reload failed, keeping the running configuration: {}", e.what());
        }
        sd_notify(0, "READY=1");
        continue;
      }
      spdlog::info("{} received: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      sd_notify(0, "STOPPING=1");
      break;
    }
    server.stop();
  } catch (const std::exception& e) {
    spdlog::critical("pacs2xnatd: {}", e.what());
    return 1;
  }
  spdlog::info("pacs2xnatd stopped");
  return 0;
}

}  // namespace p2x::service
