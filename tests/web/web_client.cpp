// Test HTTP client for the web door (see web_client.hpp).
#include "web_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <chrono>
#include <regex>
#include <stdexcept>

namespace p2x::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string WebReply::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

WebReply WebClient::request(const std::string& method, const std::string& target,
                            const std::string& body, const std::string& content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(60));
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port_));
  std::string jar;
  for (const auto& [k, v] : cookies_) jar += (jar.empty() ? "" : "; ") + k + "=" + v;
  if (!jar.empty()) req.set(http::field::cookie, jar);
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(512u << 20);
  http::read(stream, buffer, parser);
  auto& res = parser.get();
  WebReply out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(f.value());
    if (name == "set-cookie") {
      const std::string c(f.value());
      out.set_cookies.push_back(c);
      const auto eq = c.find('='), semi = c.find(';');
      const std::string key = c.substr(0, eq), value = c.substr(eq + 1, semi - eq - 1);
      if (value.empty() || c.find("Max-Age=0") != std::string::npos)
        cookies_.erase(key);
      else
        cookies_[key] = value;
    }
  }
  out.body = std::move(res.body());
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

WebReply WebClient::api_post(const std::string& target, const std::string& json_body) {
  return request("POST", target, json_body, "application/json", {{"X-CSRF-Token", csrf()}});
}

WebReply WebClient::login(const std::string& user, const std::string& password) {
  const WebReply form = get("/login");
  return request(
      "POST", "/login",
      form_encode(
          {{"csrf", hidden_value(form.body, "csrf")}, {"user", user}, {"password", password}}),
      "application/x-www-form-urlencoded");
}

std::string WebClient::csrf() {
  return meta_csrf(get("/jobs").body);
}

std::string WebClient::cookie(const std::string& name) const {
  auto it = cookies_.find(name);
  return it == cookies_.end() ? "" : it->second;
}

std::string hidden_value(const std::string& html, const std::string& name) {
  std::smatch m;
  const std::regex re("name=\"" + name + "\" value=\"([^\"]*)\"");
  return std::regex_search(html, m, re) ? m[1].str() : "";
}

std::string meta_csrf(const std::string& html) {
  std::smatch m;
  static const std::regex re("<meta name=\"csrf-token\" content=\"([0-9a-f]+)\">");
  return std::regex_search(html, m, re) ? m[1].str() : "";
}

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& pairs) {
  const auto enc = [](const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  };
  std::string out;
  for (const auto& [k, v] : pairs) out += (out.empty() ? "" : "&") + enc(k) + "=" + enc(v);
  return out;
}

}  // namespace p2x::test
