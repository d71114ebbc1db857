// web/http: the request/response helpers (see http.hpp). Form and query decoding is
// Boost.URL's.
#include "web/http.hpp"

#include <boost/url/params_view.hpp>
#include <boost/url/parse_query.hpp>

namespace p2x::web {

std::string_view Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::string_view Request::path() const {
  const std::string_view t(target);
  return t.substr(0, t.find('?'));
}

std::string_view Request::query() const {
  const auto q = target.find('?');
  return q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1);
}

Response redirect(const std::string& location) {
  Response r;
  r.status = 303;
  r.set("Location", location);
  r.content_type = "text/plain; charset=utf-8";
  r.body = "See " + location + "\n";
  return r;
}

Response text_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  if (r.body.empty() || r.body.back() != '\n') r.body += '\n';
  return r;
}

Response json_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

void add_security_headers(Response& r, bool tls) {
  r.set("Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  r.set("X-Frame-Options", "DENY");
  r.set("X-Content-Type-Options", "nosniff");
  r.set("Referrer-Policy", "same-origin");  // "no-referrer" makes browsers send "Origin: null"
  r.set("Cross-Origin-Opener-Policy", "same-origin");
  r.set("Cross-Origin-Resource-Policy", "same-origin");
  r.set("Cache-Control", r.cacheable ? "private, max-age=3600" : "no-store");
  if (tls) r.set("Strict-Transport-Security", "max-age=31536000");
}

std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  if (text.empty()) return out;
  auto encoded = boost::urls::parse_query(boost::urls::string_view(text.data(), text.size()));
  if (!encoded) return out;  // a malformed escape: nothing usable
  boost::urls::encoding_opts opt;
  opt.space_as_plus = true;
  for (const auto& p : boost::urls::params_view(*encoded, opt)) {  // decoded
    out.emplace_back(p.key, p.has_value ? p.value : std::string());
  }
  return out;
}

std::string form_value(const std::vector<std::pair<std::string, std::string>>& pairs,
                       std::string_view key) {
  for (const auto& [k, v] : pairs) {
    if (k == key) return v;
  }
  return {};
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace p2x::web
