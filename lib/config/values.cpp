// config/values: validators for individual configuration values.
#include "config/values.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "text/text.hpp"

namespace p2x::config::detail {
namespace {

bool is_control(char c) {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

std::string quote_json(const std::string& s) {
  return describe(Json(s));
}

bool starts_with_ci(const std::string& s, std::string_view prefix) {
  return text::iequals(std::string_view(s).substr(0, prefix.size()), prefix);
}

}  // namespace

std::string read_ae_title(const Node& node) {
  if (!node.json().is_string()) node.expected("an AE title (a string of 1 to 16 characters)");
  std::string ae = node.json().get<std::string>();
  if (ae.find_first_not_of(' ') == std::string::npos) {
    node.fail("AE title must not be empty or only spaces");
  }
  if (ae.size() > 16) {
    node.fail("AE title " + quote_json(ae) + " is " + std::to_string(ae.size()) +
              " characters long; at most 16 are allowed");
  }
  if (std::any_of(ae.begin(), ae.end(), [](char c) { return c == '\\' || is_control(c); })) {
    node.fail("AE title " + quote_json(ae) + " contains a backslash or a control character");
  }
  return ae;
}

std::string read_host(const Node& node) {
  const std::string what = "a host name or IP address";
  if (!node.json().is_string()) node.expected(what);
  std::string host = node.json().get<std::string>();
  if (host.empty() || host.size() > 253 ||
      std::any_of(host.begin(), host.end(), [](char c) { return c == ' ' || is_control(c); })) {
    node.expected(what);
  }
  return host;
}

std::string read_uid(const Node& node) {
  const std::string what = "a DICOM UID (digits and dots, at most 64 characters)";
  if (!node.json().is_string()) node.expected(what);
  std::string uid = node.json().get<std::string>();
  if (!text::is_valid_uid(uid)) node.expected(what);
  return uid;
}

int read_time_of_day(const Node& node) {
  const std::string what = "a time \"HH:MM\" between 00:00 and 24:00";
  if (!node.json().is_string()) node.expected(what);
  const auto& s = node.json().get_ref<const std::string&>();
  auto digit = [&](std::size_t i) { return std::isdigit(static_cast<unsigned char>(s[i])) != 0; };
  if (s.size() != 5 || s[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4)) {
    node.expected(what);
  }
  int hours = (s[0] - '0') * 10 + (s[1] - '0');
  int minutes = (s[3] - '0') * 10 + (s[4] - '0');
  if (hours > 24 || minutes > 59 || (hours == 24 && minutes != 0)) node.expected(what);
  return hours * 60 + minutes;
}

std::string read_absolute_path(const Node& node, std::size_t max_len) {
  std::string what = "an absolute path";
  if (max_len > 0) what += " of at most " + std::to_string(max_len) + " bytes";
  if (!node.json().is_string()) node.expected(what);
  std::string path = node.json().get<std::string>();
  if (path.empty() || path[0] != '/' || (max_len > 0 && path.size() > max_len) ||
      std::any_of(path.begin(), path.end(), is_control)) {
    node.expected(what);
  }
  return path;
}

std::string read_short_name(const Node& node) {
  const std::string what = "a name of letters, digits, '.', '_' or '-' (at most 64)";
  if (!node.json().is_string()) node.expected(what);
  std::string name = node.json().get<std::string>();
  auto allowed = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  };
  if (name.empty() || name.size() > 64 || !std::isalnum(static_cast<unsigned char>(name[0])) ||
      !std::all_of(name.begin(), name.end(), allowed)) {
    node.expected(what);
  }
  return name;
}

std::string read_base_url(const Node& node) {
  const std::string what = "an http:// or https:// URL";
  if (!node.json().is_string()) node.expected(what);
  std::string url = node.json().get<std::string>();
  std::size_t scheme_len = starts_with_ci(url, "https://")  ? 8
                           : starts_with_ci(url, "http://") ? 7
                                                            : 0;
  if (scheme_len == 0 ||
      std::any_of(url.begin(), url.end(), [](char c) { return c == ' ' || is_control(c); })) {
    node.expected(what);
  }
  while (url.size() > scheme_len && url.back() == '/') url.pop_back();
  std::size_t host_end = url.find_first_of("/?#", scheme_len);
  if (host_end == scheme_len || url.size() == scheme_len) node.expected(what + " with a host");
  if (url.find_first_of("?#", scheme_len) != std::string::npos) {
    node.expected(what + " without query or fragment");
  }
  if (url.size() >= 5 && url.compare(url.size() - 5, 5, "/data") == 0) {
    node.expected("the XNAT base URL without the trailing /data");
  }
  return url;
}

}  // namespace p2x::config::detail

namespace p2x::config::detail {
namespace {

// An address as bytes (4 for IPv4, 16 for IPv6), IPv4-mapped IPv6 addresses as IPv4.
std::string address_bytes(const sockaddr* sa) {
  if (sa == nullptr) return {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return std::string(reinterpret_cast<const char*>(&in->sin_addr), 4);
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
      return std::string(reinterpret_cast<const char*>(&in6->sin6_addr) + 12, 4);
    return std::string(reinterpret_cast<const char*>(&in6->sin6_addr), 16);
  }
  return {};
}

bool loopback_or_any(const std::string& a) {
  if (a.size() == 4) return a[0] == 127 || a == std::string(4, '\0');
  if (a.size() == 16)
    return a == std::string(16, '\0') || a == std::string(15, '\0') + std::string(1, '\1');
  return false;
}

std::vector<std::string> interface_addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    std::string a = address_bytes(i->ifa_addr);
    if (!a.empty()) out.push_back(std::move(a));
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

bool is_local_host(const std::string& host) {
  const std::string name = text::to_lower(host);
  if (name == "localhost" ||
      (name.size() > 10 && name.compare(name.size() - 10, 10, ".localhost") == 0))
    return true;
  char own[256] = {};
  if (::gethostname(own, sizeof own - 1) == 0 && name == text::to_lower(own)) return true;
  // Addresses only: no name is looked up (no DNS while a configuration is read).
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  const std::vector<std::string> ours = interface_addresses();
  bool local = false;
  for (const addrinfo* a = found; a != nullptr && !local; a = a->ai_next) {
    const std::string bytes = address_bytes(a->ai_addr);
    local = loopback_or_any(bytes) || std::find(ours.begin(), ours.end(), bytes) != ours.end();
  }
  ::freeaddrinfo(found);
  return local;
}

}  // namespace p2x::config::detail
