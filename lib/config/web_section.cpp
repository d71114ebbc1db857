// config/web_section: the "web" section (the daemon's HTTP listener, lib/web).
//
// `listen` is "host:port" or "[v6]:port". A listener on anything but a loopback address must
// use TLS (tls_cert and tls_key, both or neither): passwords travel through its login form.
#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>

#include "config/json_reader.hpp"
#include "config/sections.hpp"
#include "config/values.hpp"

namespace p2x::config::detail {
namespace {

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 5 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// "host:port" or "[v6]:port" -> host (without brackets) and port.
void read_listen(const Node& node, Web& w) {
  const std::string what = "\"host:port\" (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")";
  if (!node.json().is_string()) node.expected(what);
  const std::string s = node.json().get<std::string>();
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) node.expected(what);
  std::string host = s.substr(0, colon);
  const std::string port = s.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    node.expected(what + " (an IPv6 address goes in brackets)");
  }
  if (!all_digits(port) || std::stoi(port) < 1 || std::stoi(port) > 65535) {
    node.expected(what + " with a port 1..65535");
  }
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec && host != "localhost") {
    node.expected(what + " whose host is an IP address or localhost");
  }
  w.listen_host = host;
  w.listen_port = static_cast<std::uint16_t>(std::stoi(port));
}

void read_admins(const Node& node, Web& w) {
  for (const Node& admin : node.as_array(false)) {
    const std::string name = admin.as_non_empty_string();
    if (name.size() > 255 || std::any_of(name.begin(), name.end(), [](unsigned char c) {
          return c < 0x20 || c == 0x7f || c == ' ';
        })) {
      admin.expected("an XNAT user name (no spaces or control characters)");
    }
    w.admins.push_back(name);
  }
}

}  // namespace

Web read_web(const Node& node) {
  ObjectReader r(node, {"listen", "tls_cert", "tls_key", "admins", "session_idle_minutes",
                        "permissions_cache_s", "metrics_token_file", "max_connections",
                        "login_max_failures", "login_window_s"});
  Web w;
  if (auto listen = r.optional("listen")) {
    const bool empty =
        listen->json().is_string() && listen->json().get_ref<const std::string&>().empty();
    if (!empty) read_listen(*listen, w);
  }
  for (const char* key : {"tls_cert", "tls_key", "metrics_token_file"}) {
    auto value = r.optional(key);
    if (!value) continue;
    const bool empty =
        value->json().is_string() && value->json().get_ref<const std::string&>().empty();
    if (empty) continue;
    const std::string path = read_absolute_path(*value);
    (std::string(key) == "tls_cert"  ? w.tls_cert
     : std::string(key) == "tls_key" ? w.tls_key
                                     : w.metrics_token_file) = path;
  }
  if (auto admins = r.optional("admins")) read_admins(*admins, w);
  r.read_int("session_idle_minutes", w.session_idle_minutes, 1, 7 * 24 * 60);
  r.read_int("permissions_cache_s", w.permissions_cache_s, 0, 3600);
  r.read_int("max_connections", w.max_connections, 8, 10000);
  r.read_int("login_max_failures", w.login_max_failures, 1, 1000);
  r.read_int("login_window_s", w.login_window_s, 1, 86400);
  if (w.tls_cert.empty() != w.tls_key.empty()) {
    const std::string missing = w.tls_cert.empty() ? "tls_cert" : "tls_key";
    Node(node.json(), join_path(node.path(), missing), node.source())
        .fail("required when web." + std::string(missing == "tls_cert" ? "tls_key" : "tls_cert") +
              " is set (the certificate and its key go together)");
  }
  if (w.enabled() && !w.tls() && !is_loopback(w.listen_host)) {
    r.required("listen").fail(
        "listening on " + w.listen_host +
        " (not a loopback address) needs TLS: set web.tls_cert "
        "and web.tls_key, or listen on 127.0.0.1 behind a TLS proxy (passwords go through the "
        "login form)");
  }
  return w;
}

}  // namespace p2x::config::detail
