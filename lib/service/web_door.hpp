// service/web_door: the daemon's web door (lib/web) put together from the configuration: the
// XNAT users directory (each person's own login and rights), the routes on the daemon's own
// operations (the Dispatcher the control socket serves) and /metrics, behind one listener.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "ipc/server.hpp"

namespace p2x::metrics {
class Metrics;
}

namespace p2x::service {

class WebDoor {
 public:
  virtual ~WebDoor() = default;
  virtual void stop() = 0;
};

// Starts listening on cfg.web.listen, or returns nullptr when the web door is off. Throws
// std::runtime_error (address in use, unreadable certificate or metrics token file, ...).
std::unique_ptr<WebDoor> start_web_door(const config::Config& cfg,
                                        const ipc::Dispatcher& operations,
                                        metrics::Metrics* metrics);

// The bearer token for /metrics: the first line of `path`, which must be a regular file that
// neither group nor others may read (0600). Throws std::runtime_error naming the file.
std::string read_metrics_token(const std::string& path);

}  // namespace p2x::service
