// web/http: the web door's socket-free request and response, so that routing, pages and access
// rules are plain functions from a Request to a Response (tests call them without a socket).
// The listener (listener.cpp) converts to and from Beast's messages.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace p2x::web {

struct Request {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string peer;       // the client's address
  bool loopback = false;  // the client connected from a loopback address
  bool tls = false;

  // The first header named `name` (lower case), or "".
  std::string_view header(std::string_view name) const;
  std::string_view path() const;   // target without the query
  std::string_view query() const;  // after '?', or ""
};

struct Response {
  int status = 200;
  std::string content_type = "text/html; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool cacheable = false;  // static assets: may be cached; everything else is no-store

  void set(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

Response redirect(const std::string& location);  // 303 See Other
Response text_response(int status, std::string body);
Response json_response(int status, std::string body);

// The headers every answer carries (CSP without inline script, no framing, no sniffing, no
// referrer to other sites; HSTS over TLS; no-store unless cacheable).
void add_security_headers(Response& response, bool tls);

// Query string or form body (application/x-www-form-urlencoded) -> decoded pairs, in order.
// Text with a malformed escape yields no pairs; never throws.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);
// The value of the first `key` in pairs, or "".
std::string form_value(const std::vector<std::pair<std::string, std::string>>& pairs,
                       std::string_view key);

// HTML text and attribute escaping.
std::string html_escape(std::string_view text);

}  // namespace p2x::web
