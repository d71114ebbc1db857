// service/web_door: see web_door.hpp.
#include "service/web_door.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "metrics/metrics.hpp"
#include "text/text.hpp"
#include "web/app.hpp"
#include "web/web.hpp"
#include "xnat/user_session.hpp"

namespace p2x::service {

namespace {

// web::IXnatUsers on the XNAT the daemon imports into.
class XnatUsers : public web::IXnatUsers {
 public:
  explicit XnatUsers(const config::Config& cfg) : directory_(settings(cfg)) {}
  std::string login(const std::string& user, const std::string& password) override {
    return directory_.login(user, password);
  }
  std::vector<std::string> projects(const std::string& session, bool create) override {
    return directory_.projects(session, create ? xnat::Permission::Create : xnat::Permission::Read);
  }
  void logout(const std::string& session) noexcept override { directory_.logout(session); }

 private:
  static xnat::Settings settings(const config::Config& cfg) {
    xnat::Settings s;
    s.url = cfg.xnat.url;
    s.verify_tls = cfg.xnat.verify_tls;
    s.ca_file = cfg.xnat.ca_file;
    s.timeout_s = std::min(cfg.xnat.timeout_s, 30);  // a person is waiting
    return s;
  }
  xnat::UserDirectory directory_;
};

class RunningWebDoor : public WebDoor {
 public:
  RunningWebDoor(const config::Config& cfg, const ipc::Dispatcher& operations,
                 metrics::Metrics* metrics)
      : users_(cfg),
        app_(deps(cfg, operations, metrics, users_)),
        listener_(options(cfg), [this](const web::Request& r) { return app_.handle(r); }) {}
  void stop() override { listener_.stop(); }
  std::uint16_t port() const { return listener_.port(); }

 private:
  static web::AppDeps deps(const config::Config& cfg, const ipc::Dispatcher& operations,
                           metrics::Metrics* metrics, web::IXnatUsers& users) {
    web::AppDeps d{cfg, operations, users, {}, {}, {}};
    if (metrics) d.metrics = [metrics] { return metrics->render(); };
    if (!cfg.web.metrics_token_file.empty()) {
      d.metrics_token = read_metrics_token(cfg.web.metrics_token_file);
    }
    return d;
  }
  static web::ListenerOptions options(const config::Config& cfg) {
    web::ListenerOptions o;
    o.host = cfg.web.listen_host;
    o.port = cfg.web.listen_port;
    o.tls_cert = cfg.web.tls_cert;
    o.tls_key = cfg.web.tls_key;
    o.max_connections = static_cast<std::size_t>(cfg.web.max_connections);
    o.max_upload_bytes = static_cast<std::size_t>(cfg.limits.max_request_bytes);
    return o;
  }
  XnatUsers users_;
  web::App app_;
  web::Listener listener_;
};

}  // namespace

std::string read_metrics_token(const std::string& path) {
  const auto fail = [&path](const std::string& why) {
    return std::runtime_error("web.metrics_token_file " + path + ": " + why);
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw fail("is not a regular file");
  if ((st.st_mode & 077) != 0) throw fail("may be read by group or others; run chmod 600 " + path);
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  token = text::trim(token);
  if (token.size() < 16)
    throw fail("must hold a token of at least 16 characters on its first line");
  return token;
}

std::unique_ptr<WebDoor> start_web_door(const config::Config& cfg,
                                        const ipc::Dispatcher& operations,
                                        metrics::Metrics* metrics) {
  if (!cfg.web.enabled()) return nullptr;
  auto door = std::make_unique<RunningWebDoor>(cfg, operations, metrics);
  spdlog::info("web door listening on {}://{}:{}", cfg.web.tls() ? "https" : "http",
               cfg.web.listen_host, door->port());
  return door;
}

}  // namespace p2x::service
