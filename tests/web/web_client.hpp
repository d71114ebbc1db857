// A small HTTP client for the web door's tests (Boost.Beast, plain HTTP to 127.0.0.1), keeping
// cookies like a browser would (name=value only; attributes are kept for inspection).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace p2x::test {

struct WebReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; the last one wins
  std::vector<std::string> set_cookies;        // every Set-Cookie as sent
  std::string body;
  std::string header(const std::string& name) const;
};

class WebClient {
 public:
  explicit WebClient(std::uint16_t port) : port_(port) {}
  WebReply request(const std::string& method, const std::string& target,
                   const std::string& body = "", const std::string& content_type = "",
                   const std::vector<std::pair<std::string, std::string>>& headers = {});
  WebReply get(const std::string& target) { return request("GET", target); }
  // A JSON POST to the API with the session's CSRF token (csrf() unless given).
  WebReply api_post(const std::string& target, const std::string& json_body = "{}");
  // GET /login, then POST the form with the user and password; returns the POST's reply.
  WebReply login(const std::string& user, const std::string& password);
  // The CSRF token of the current session (read from the jobs page).
  std::string csrf();
  std::string cookie(const std::string& name) const;
  void set_cookie(const std::string& name, const std::string& value) { cookies_[name] = value; }
  void clear_cookies() { cookies_.clear(); }
  std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_;
  std::map<std::string, std::string> cookies_;
};

// The value="..." of the hidden input named `name` in an HTML page, or "".
std::string hidden_value(const std::string& html, const std::string& name);
// content="..." of <meta name="csrf-token">, or "".
std::string meta_csrf(const std::string& html);
// application/x-www-form-urlencoded encoding of pairs.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& pairs);

}  // namespace p2x::test
