// xnat/error_page: XNAT's own sentence out of the HTML page an error answer comes in.
//
// XNAT's REST API (Restlet) answers a failure with a status page: the message it set sits in an
// <h3>, followed by boilerplate ("You can get technical details here. Please continue your
// visit at our home page."); Tomcat's own error page (a request that never reached XNAT) has
// "HTTP Status 400 – Bad Request", "Type Status Report", "Message <the message>",
// "Description <generic text>" and its version. A person needs only the message: the page is
// cut into its blocks (headings, paragraphs, line breaks...), the boilerplate blocks dropped and
// what is left joined.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "text/text.hpp"
#include "xnat/requests.hpp"

namespace p2x::xnat::detail {

namespace {

bool is_block_tag(const std::string& name) {
  static const char* const kBlocks[] = {"p",   "br",    "div", "h1", "h2",         "h3",   "h4",
                                        "h5",  "h6",    "li",  "tr", "hr",         "body", "html",
                                        "pre", "table", "ul",  "ol", "blockquote", "td",   "th"};
  return std::any_of(std::begin(kBlocks), std::end(kBlocks),
                     [&](const char* b) { return name == b; });
}

// The lower-case name of the tag starting at body[i] == '<' ("/p" -> "p").
std::string tag_name(const std::string& body, std::size_t i) {
  std::size_t j = i + 1;
  if (j < body.size() && body[j] == '/') ++j;
  std::string name;
  while (j < body.size() && std::isalnum(static_cast<unsigned char>(body[j])) && name.size() < 16)
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(body[j++])));
  return name;
}

// Index just past the element that starts at i when it is one whose content is never text
// (head, script, style, title, a comment); i when it is not.
std::size_t skip_hidden(const std::string& body, const std::string& low, std::size_t i,
                        const std::string& name) {
  if (low.compare(i, 4, "<!--") == 0) {
    const auto end = low.find("-->", i + 4);
    return end == std::string::npos ? body.size() : end + 3;
  }
  for (const char* hidden : {"head", "script", "style", "title"}) {
    if (name != hidden || low.compare(i, 2, "</") == 0) continue;
    const auto end = low.find(std::string("</") + hidden, i);
    if (end == std::string::npos) return body.size();
    const auto close = body.find('>', end);
    return close == std::string::npos ? body.size() : close + 1;
  }
  return i;
}

// The page's text blocks, raw (inline tags and entities still in them).
std::vector<std::string> blocks_of(const std::string& body) {
  const std::string low = text::to_lower(body);
  std::vector<std::string> blocks(1);
  for (std::size_t i = 0; i < body.size();) {
    if (body[i] != '<') {
      blocks.back() += body[i++];
      continue;
    }
    const std::string name = tag_name(body, i);
    const std::size_t past = skip_hidden(body, low, i, name);
    if (past != i) {
      i = past;
      blocks.emplace_back();
      continue;
    }
    const auto close = body.find('>', i);
    const std::size_t end = close == std::string::npos ? body.size() : close + 1;
    if (is_block_tag(name)) {
      blocks.emplace_back();
    } else {
      blocks.back() += body.substr(i, end - i);  // inline: text_extract drops it
    }
    i = end;
  }
  return blocks;
}

bool starts_with_ci(const std::string& s, const char* prefix) {
  const std::string p = prefix;
  return s.size() >= p.size() && text::iequals(s.substr(0, p.size()), p);
}

// A block that is the page's furniture, not XNAT's message.
bool is_boilerplate(const std::string& s) {
  static const char* const kPrefixes[] = {"you can get technical details",
                                          "please continue your visit",
                                          "status page",
                                          "no description available for this result status",
                                          "type status report",
                                          "type exception report",
                                          "apache tomcat",
                                          "http status ",
                                          "description the ",
                                          "note the full stack trace",
                                          "the server cannot or will not process",
                                          "the server encountered"};
  return std::any_of(std::begin(kPrefixes), std::end(kPrefixes),
                     [&](const char* p) { return starts_with_ci(s, p); });
}

// The standard reason phrase of an HTTP status (pages repeat it; Tomcat 9 sends none itself).
std::string standard_reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return {};
  }
}

}  // namespace

std::string error_text(const std::string& body, int status, const std::string& reason,
                       std::size_t max_len) {
  if (body.find('<') == std::string::npos) return text_extract(body, max_len);
  std::vector<std::string> kept;
  for (const auto& raw : blocks_of(body)) {
    std::string s = text_extract(raw, max_len);
    if (starts_with_ci(s, "message ")) s = text::trim(s.substr(8));  // Tomcat's page
    if (s.empty() || is_boilerplate(s)) continue;
    if (std::find(kept.begin(), kept.end(), s) == kept.end()) kept.push_back(s);
  }
  // The reason phrase repeated in the page says nothing more than the status line.
  const std::string standard = standard_reason(status);
  const auto is_reason = [&](const std::string& s) {
    return (!reason.empty() && text::iequals(s, text::trim(reason))) ||
           (!standard.empty() && text::iequals(s, standard));
  };
  if (kept.size() > 1) kept.erase(std::remove_if(kept.begin(), kept.end(), is_reason), kept.end());
  if (kept.empty()) return {};
  std::string out;
  for (const auto& s : kept) out += (out.empty() ? "" : " - ") + s;
  if (out.size() > max_len) out = out.substr(0, max_len) + "...";
  return out;
}

}  // namespace p2x::xnat::detail
