#include "service/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <vector>

#include <spdlog/spdlog.h>

#include "config/config.hpp"
#include "ipc/server.hpp"
#include "log/log.hpp"
#include "metrics/metrics.hpp"
#include "pacs/pacs.hpp"
#include "pacs/retrieval.hpp"
#include "pipeline/archives.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/spool.hpp"
#include "service/commands.hpp"
#include "service/operations.hpp"
#include "service/web_door.hpp"
#include "store/store.hpp"
#include "xnat/xnat.hpp"

namespace p2x::service {

namespace fs = std::filesystem;

namespace {

// A state, spool or socket directory that cannot be created or written: a configuration
// problem, so the daemon exits 2 (the unit's RestartPreventExitStatus: no restart loop).
struct DirectoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void directory_error(const char* what, const std::string& path,
                                  const std::string& why) {
  throw DirectoryError(std::string("cannot use ") + what + " " + path + ": " + why);
}

// Creates the directory `path` and its missing parents; returns those it created, outermost
// first. Throws DirectoryError.
std::vector<fs::path> make_dir(const std::string& path, const char* what) {
  std::vector<fs::path> missing;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(path, ec)) && !fs::is_directory(path, ec)) {
    directory_error(what, path, "it exists but is not a directory");
  }
  fs::path p = fs::path(path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "/a/b/" is "/a/b"
  for (; !p.empty() && !fs::exists(fs::symlink_status(p, ec));) {
    missing.insert(missing.begin(), p);
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  fs::create_directories(path, ec);
  if (ec) directory_error(what, path, "cannot create it: " + ec.message());
  if (!fs::is_directory(path, ec)) directory_error(what, path, "it is not a directory");
  return missing;
}

// Proves that the daemon can create files in the directory `path`: an unnamed O_TMPFILE file
// where the file system has them (nothing to clean up, even after a crash), else a named file
// removed at once. Throws DirectoryError.
void probe_writable(const std::string& path, const char* what) {
  int fd = ::open(path.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string name = path + "/.pacs2xnatd-write-test-XXXXXX";
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd >= 0) ::unlink(name.c_str());
  }
  if (fd < 0) {
    directory_error(what, path, std::string("cannot write in it: ") + std::strerror(errno));
  }
  ::close(fd);
}

// The directories the daemon writes in: state (store and lock), spool, the socket's.
struct NeededDirectory {
  std::string path;
  const char* what;
};

std::vector<NeededDirectory> needed_directories(const config::Config& cfg) {
  return {{cfg.paths.state_dir, "state directory"},
          {cfg.paths.spool_dir, "spool directory"},
          {fs::path(cfg.paths.socket).parent_path().string(), "socket directory"}};
}

xnat::Settings xnat_settings(const config::Config& cfg) {
  xnat::Settings s;
  s.url = cfg.xnat.url;
  s.verify_tls = cfg.xnat.verify_tls;
  s.ca_file = cfg.xnat.ca_file;
  s.timeout_s = cfg.xnat.timeout_s;
  s.prearchive = cfg.xnat.prearchive.value_or(false);  // the pipeline decides per job
  return s;
}

// Config step: the file, the command-line overrides and the XNAT credentials. Errors go to
// stderr (the log is not set up yet); returns false after one.
bool load_config(const DaemonOptions& options, config::Config& cfg,
                 xnat::Credentials& credentials) {
  try {
    cfg = config::load_file(options.config_path);
  } catch (const std::exception& e) {
    std::cerr << "pacs2xnatd: " << e.what() << "\n";
    return false;
  }
  if (!options.state_dir.empty()) {
    bool spool_default = cfg.paths.spool_dir == cfg.paths.state_dir + "/spool";
    cfg.paths.state_dir = options.state_dir;
    if (spool_default) cfg.paths.spool_dir = cfg.paths.state_dir + "/spool";
  }
  if (!options.socket_path.empty()) cfg.paths.socket = options.socket_path;
  try {
    credentials = xnat::read_credentials(cfg.xnat.credentials_file);
  } catch (const std::exception& e) {
    std::cerr << "pacs2xnatd: XNAT credentials: " << e.what() << "\n";
    return false;
  }
  return true;
}

// Signals are taken synchronously on the main thread (sigtimedwait), never in a handler; they
// are blocked before any thread starts so every thread inherits the mask. Returns them.
sigset_t block_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

// The state directory (locked: a second daemon's store would "recover" the first one's work),
// the spool and the socket's directory, each created if missing and proved writable (else
// DirectoryError: exit 2).
void prepare_directories(const config::Config& cfg) {
  for (const auto& dir : needed_directories(cfg)) {
    make_dir(dir.path, dir.what);
    probe_writable(dir.path, dir.what);
    if (dir.path != cfg.paths.state_dir) continue;
    const std::string lock_path = cfg.paths.state_dir + "/pacs2xnatd.lock";
    int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) {
      directory_error(dir.what, dir.path,
                      "cannot open the lock " + lock_path + ": " + std::strerror(errno));
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      throw std::runtime_error("another pacs2xnatd is already running with state directory " +
                               cfg.paths.state_dir + " (lock " + lock_path + ")");
    }
  }
  if (!cfg.xnat.verify_tls) {
    spdlog::warn("xnat.verify_tls is false: the XNAT server's certificate is NOT checked");
  }
}

// What the start-up steps share: the configuration, the command line and the signal set.
struct Startup {
  config::Config& cfg;
  const DaemonOptions& options;
  const xnat::Credentials& credentials;
  const sigset_t& signals;
  std::string boot_id;  // set by the store step
};

// SIGHUP: limits and log level from the configuration file again; on error the running
// configuration stays.
void reload(Startup& s, pipeline::Pipeline& pipe) {
  spdlog::info("SIGHUP: reloading limits from {}", s.options.config_path);
  sd_notify(0, "RELOADING=1");
  try {
    config::Config fresh = config::load_file(s.options.config_path);
    s.cfg.limits = fresh.limits;
    pipe.reload(fresh);
    log::set_level(fresh.log_level);
  } catch (const std::exception& e) {
    spdlog::error("reload failed, keeping the running configuration: {}", e.what());
  }
  sd_notify(0, "READY=1");
}

// Run loop: pings the systemd watchdog while the pipeline is healthy, reloads on SIGHUP and
// returns on SIGTERM or SIGINT.
void wait_for_stop(Startup& s, pipeline::Pipeline& pipe) {
  std::uint64_t watchdog_usec = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  timespec tick{1, 0};
  if (watchdog && watchdog_usec / 2 < 1000000) {
    tick = {0, static_cast<long>(watchdog_usec / 2 * 1000)};
  }
  for (;;) {
    int sig = sigtimedwait(&s.signals, nullptr, &tick);
    if (sig < 0) {
      if (watchdog && pipe.healthy()) sd_notify(0, "WATCHDOG=1");
    } else if (sig == SIGHUP) {
      reload(s, pipe);
    } else {
      spdlog::info("{} received: draining (at most {} s)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                   s.cfg.limits.drain_timeout_s);
      sd_notify(0, "STOPPING=1");
      return;
    }
  }
}

// Drain: no new requests, the pipeline's work in flight finishes (or is cut at the drain
// timeout), the SCP closes, and the spool is marked as written out for this boot.
void drain(Startup& s, ipc::Server& server, WebDoor* web, pipeline::Pipeline& pipe,
           pacs::StorageScp& scp) {
  if (web) web->stop();
  server.stop();
  pipe.stop();
  scp.stop();
  try {
    pipe.spool().mark_synced(s.boot_id);
  } catch (const std::exception& e) {
    spdlog::error("spool not marked as synced ({}): after a reboot its files are retrieved again",
                  e.what());
  }
}

// Socket step: the IPC commands on the running pipeline, READY=1, the run loop, the drain.
void serve(Startup& s, store::Store& store, pacs::StorageScp& scp, pipeline::Pipeline& pipe,
           xnat::Client& xnat_client, metrics::Metrics& metrics) {
  const config::Config& cfg = s.cfg;
  ipc::Dispatcher dispatcher;
  Context ctx{cfg, store, {}};
  ctx.hooks.wake = [&pipe] { pipe.wake(); };
  ctx.hooks.job_notes = [&pipe](std::int64_t id) { return pipe.job_notes(id); };
  ctx.hooks.preflight = [&xnat_client, &cfg](const nlohmann::json& args,
                                             const std::vector<store::NewItem>& items) {
    return xnat_preflight(xnat_client, args, items, cfg.xnat.prearchive);
  };
  register_commands(dispatcher, ctx);
  register_operations(dispatcher, cfg, &xnat_client);
  pipe.start();
  // Read commands on their own pool, never behind a submit waiting on XNAT; idle clients are
  // timed out and at most 64 connections open (the defaults of ipc::ServerOptions).
  ipc::ServerOptions server_options;
  server_options.max_request_bytes = static_cast<std::size_t>(cfg.limits.max_request_bytes);
  // The web door (if configured) on the same operations as the socket; up before the socket
  // answers, so whoever waits for the socket finds both.
  const std::unique_ptr<WebDoor> web = start_web_door(cfg, dispatcher, &metrics);
  ipc::Server server(cfg.paths.socket, dispatcher, server_options);
  spdlog::info("pacs2xnatd ready: AE {} on port {}, store {}, socket {}, XNAT {}", cfg.ae_title,
               cfg.storage_port, cfg.paths.state_dir, cfg.paths.socket, cfg.xnat.url);
  sd_notify(0, "READY=1\nSTATUS=importing");
  wait_for_stop(s, pipe);
  drain(s, server, web.get(), pipe, scp);
}

// What /metrics reads at each scrape: the store's counts and ages, each PACS's association slots
// (from the running pipeline's gate, once there is one) and the spool's free space.
metrics::Sources metric_sources(const config::Config& cfg, const store::Store& store,
                                const pipeline::Pipeline*& running) {
  metrics::Sources sources;
  sources.queue = [&store] {
    const store::StoreStats st = store.stats();
    metrics::QueueState q;
    for (const auto& c : st.items) {
      q.items.push_back({c.project, std::string(store::to_string(c.state)), c.n});
    }
    q.oldest_queued_at = st.oldest_queued_at;
    q.oldest_in_flight_at = st.oldest_in_flight_at;
    q.last_verified_at = st.last_verified_at;
    return q;
  };
  sources.associations = [&cfg, &running] {
    std::vector<metrics::PacsSlots> slots;
    if (!running) return slots;
    const std::time_t now = std::time(nullptr);
    for (const auto& node : cfg.pacs) {
      slots.push_back({node.name, running->gate().in_use(node.name),
                       running->gate().limit(node.name, now)});  // the limit in force
    }
    return slots;
  };
  sources.spool_free_bytes = [dir = cfg.paths.spool_dir]() -> std::optional<std::uint64_t> {
    struct statvfs fs {};
    if (::statvfs(dir.c_str(), &fs) != 0) return std::nullopt;
    return static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  };
  return sources;
}

// The import pipeline on the store and its two seams: the PACS (C-FIND and C-MOVE into the
// Storage SCP, or C-GET) and XNAT (the archive the configuration chooses).
void run_pipeline(Startup& s, store::Store& store, pacs::StorageScp& scp) {
  const pipeline::Pipeline* running = nullptr;  // set once the pipeline exists
  metrics::Metrics metrics(metric_sources(s.cfg, store, running));
  xnat::Settings settings = xnat_settings(s.cfg);
  settings.recorder = &metrics;
  xnat::Client xnat_client(settings, s.credentials);
  pacs::DimsePacs pacs_side(&scp);
  const auto archive = pipeline::make_archive(s.cfg, xnat_client);
  pipeline::Pipeline pipe(s.cfg, store, pacs_side, *archive);
  pipe.set_recorder(&metrics);
  running = &pipe;
  serve(s, store, scp, pipe, xnat_client, metrics);
}

// Store step (crash recovery, the spool checked against this boot), then the Storage SCP, then
// the pipeline and the socket.
void run_services(Startup& s) {
  const config::Config& cfg = s.cfg;
  store::Store store(cfg.paths.state_dir + "/pacs2xnat.db");
  if (store.recovered() > 0) {
    spdlog::warn("recovered {} item(s) left in flight by the previous run", store.recovered());
  }
  s.boot_id = pipeline::read_boot_id(cfg.paths.boot_id_file);
  const pipeline::Spool spool(cfg.paths.spool_dir);
  spool.prepare(s.boot_id, store);

  pacs::ScpOptions scp_options;
  scp_options.sink = &spool;  // stages and keeps copies apart where the spool says
  scp_options.allowed_calling_aes = cfg.storage_allowed_calling_aes;
  scp_options.max_per_address = cfg.storage_max_associations_per_address;
  scp_options.max_per_ae = cfg.storage_max_associations_per_ae;
  scp_options.busy_idle_s = cfg.storage_busy_idle_s;
  pacs::StorageScp scp(cfg.ae_title, cfg.storage_port, cfg.storage_max_associations, scp_options);
  scp.start();
  run_pipeline(s, store, scp);
}

// --check-config: the directories can be created and written. Removes the ones it created (the
// daemon creates them at start-up) and whatever else it wrote. Throws DirectoryError.
void check_directories(const config::Config& cfg) {
  std::vector<fs::path> created;
  const auto remove_created = [&created] {
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
      std::error_code ignored;
      fs::remove(*it, ignored);  // only if empty: never what another program put there meanwhile
    }
  };
  try {
    for (const auto& dir : needed_directories(cfg)) {
      for (auto& p : make_dir(dir.path, dir.what)) created.push_back(std::move(p));
      probe_writable(dir.path, dir.what);
    }
  } catch (...) {
    remove_created();
    throw;
  }
  remove_created();
}

// A note for a password that ends in white space (kept as written: it may be meant), else "".
std::string password_note(const config::Config& cfg, const xnat::Credentials& credentials) {
  const std::string& pw = credentials.password;
  if (pw.empty() || (pw.back() != ' ' && pw.back() != '\t')) return {};
  return "the XNAT password in " + cfg.xnat.credentials_file +
         " ends with white space, which is kept as part of the password; remove it from the "
         "file if it is not meant";
}

// --check-config after the configuration and credentials have been read: the directories, then
// "configuration ... is valid". Exit code 0, or 2 with the directory's problem.
int check_only(const DaemonOptions& options, const config::Config& cfg,
               const xnat::Credentials& credentials) {
  try {
    check_directories(cfg);
  } catch (const DirectoryError& e) {
    std::cerr << "pacs2xnatd: " << e.what() << "\n";
    return 2;
  }
  if (const std::string note = password_note(cfg, credentials); !note.empty()) {
    std::cout << "note: " << note << "\n";
  }
  std::cout << "configuration " << options.config_path << " is valid\n";
  return 0;
}

}  // namespace

int run_daemon(const DaemonOptions& options) {
  config::Config cfg;
  xnat::Credentials credentials;
  if (!load_config(options, cfg, credentials)) return 2;
  if (options.check_only) return check_only(options, cfg, credentials);
  log::init("pacs2xnatd", cfg.log_level);
  log::add_secret(credentials.password);
  if (const std::string note = password_note(cfg, credentials); !note.empty()) {
    spdlog::warn("{}", note);
  }
  const sigset_t signals = block_signals();
  umask(0027);
  Startup startup{cfg, options, credentials, signals, {}};
  try {
    pacs::init_network();
    prepare_directories(cfg);
    run_services(startup);
  } catch (const DirectoryError& e) {
    spdlog::critical("pacs2xnatd: {}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("pacs2xnatd: {}", e.what());
    return 1;
  }
  spdlog::info("pacs2xnatd stopped");
  return 0;
}

}  // namespace p2x::service
