// Test harness: the XNAT stand-in (tests/xnat_standin/standin.py) as a child process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace p2x::test {

class XnatStandin {
 public:
  // Starts on a free port with its data under `dir`; users "user:password", projects by ID.
  // `extra_args` go to standin.py as they are (e.g. {"--dicom-port", "11113"}).
  XnatStandin(const std::string& dir, const std::vector<std::string>& users,
              const std::vector<std::string>& projects, bool https = false,
              const std::vector<std::string>& extra_args = {});
  ~XnatStandin();
  void stop();
  std::uint16_t port() const { return port_; }
  std::string url() const;
  std::string ca_file() const { return dir_ + "/certs/ca.pem"; }
  const std::string& dir() const { return dir_; }  // its data, certificates and logs
  // Admin endpoints (no auth): e.g. admin("POST", "/_admin/fail?count=3&status=500").
  nlohmann::json admin(const std::string& method, const std::string& target) const;
  // Successful imports per "P/S/E" (from /_admin/uploads).
  std::map<std::string, int> uploads_per_session() const;

 private:
  std::string dir_;
  bool https_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Minimal HTTP/1.1 request to 127.0.0.1:port (plain), returning status and body.
struct HttpReply {
  int status = 0;
  std::string body;
};
HttpReply http_request(std::uint16_t port, const std::string& method, const std::string& target);

}  // namespace p2x::test
