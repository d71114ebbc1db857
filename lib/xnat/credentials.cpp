// xnat/credentials: reads the XNAT credentials file and refuses one that others can read.
// Messages name the file and the problem, never its contents (they may hold the password).
//
// The password is used exactly as written: in "user:password" form everything after the first
// ':' up to the line ending (LF or CRLF) belongs to it, trailing spaces included (a password may
// end in a space; `pacs2xnatd --check-config` points such a password out). The user name is
// trimmed. Only UTF-8 (or ASCII) text is accepted: a UTF-16 or UTF-32 file, or one holding NUL
// bytes, is refused with a message saying so instead of failing at XNAT's login.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

#include "text/text.hpp"
#include "xnat/xnat.hpp"

namespace p2x::xnat {
namespace {

constexpr std::size_t kMaxFileBytes = 64 * 1024;

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw std::runtime_error("XNAT credentials file " + path + ": " + why);
}

void check_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(path, std::string("has mode ") + mode +
                   " (readable or writable by group or others); run chmod 600 " + path);
  }
}

std::string read_content(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot be opened: ") + std::strerror(errno));
  std::string content(kMaxFileBytes + 1, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<std::size_t>(in.gcount()));
  if (content.size() > kMaxFileBytes) {
    fail(path, "is larger than " + std::to_string(kMaxFileBytes / 1024) +
                   " KiB; expected one line user:password or {\"user\":..,\"password\":..}");
  }
  return content;
}

// Refuses text that is not UTF-8: the user name and password would carry NUL bytes.
void check_encoding(const std::string& path, std::string_view content) {
  const auto starts = [&](std::string_view bom) { return content.substr(0, bom.size()) == bom; };
  const std::string save = "; save it as UTF-8 (or plain ASCII) text";
  constexpr std::string_view kUtf32Le("\xFF\xFE\0\0", 4);
  constexpr std::string_view kUtf32Be("\0\0\xFE\xFF", 4);
  if (starts(kUtf32Le) || starts(kUtf32Be)) fail(path, "is UTF-32 encoded" + save);
  if (starts("\xFF\xFE") || starts("\xFE\xFF")) fail(path, "is UTF-16 encoded" + save);
  if (content.find('\0') != std::string_view::npos) {
    fail(path,
         "contains NUL bytes (UTF-16 or UTF-32 without a byte order mark, or not text)" + save);
  }
}

Credentials parse_json_form(const std::string& path, const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    // The parser's message quotes the text near the error: never pass it on.
    fail(path, "is not valid JSON; expected {\"user\":..,\"password\":..}");
  }
  auto get = [&](const char* key) -> std::string {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return "";
    return it->get<std::string>();
  };
  Credentials c;
  c.user = get("user");
  if (c.user.empty()) c.user = get("username");
  c.password = get("password");
  if (c.user.empty() || c.password.empty())
    fail(path, "JSON must have non-empty string fields \"user\" and \"password\"");
  return c;
}

// The first line that is not blank, without its line ending (LF or CRLF) and nothing else.
std::string first_line(std::string_view content) {
  while (!content.empty()) {
    const auto end = content.find('\n');
    std::string_view line = content.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!text::trim(line).empty()) return std::string(line);
    if (end == std::string_view::npos) break;
    content.remove_prefix(end + 1);
  }
  return {};
}

Credentials parse_line_form(const std::string& path, std::string_view content) {
  const std::string line = first_line(content);
  const auto colon = line.find(':');
  if (colon == std::string::npos) fail(path, "first line must be user:password (no ':' found)");
  Credentials c;
  c.user = text::trim(std::string_view(line).substr(0, colon));
  c.password = line.substr(colon + 1);
  if (c.user.empty()) fail(path, "first line has an empty user name before ':'");
  if (c.password.empty()) fail(path, "first line has an empty password after ':'");
  return c;
}

}  // namespace

Credentials read_credentials(const std::string& path) {
  check_file(path);
  std::string content = read_content(path);
  check_encoding(path, content);
  if (content.compare(0, 3, "\xEF\xBB\xBF") == 0) content.erase(0, 3);
  const std::string trimmed = text::trim(content);
  if (trimmed.empty()) {
    fail(path, "is empty; expected user:password or {\"user\":..,\"password\":..}");
  }
  if (trimmed.front() == '{') return parse_json_form(path, trimmed);
  return parse_line_form(path, content);
}

}  // namespace p2x::xnat
