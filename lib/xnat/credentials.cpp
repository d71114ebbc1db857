// xnat/credentials: reads the XNAT credentials file and refuses one that others can read.
// Messages name the file and the problem, never its contents (they may hold the password).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "text/text.hpp"
#include "xnat/xnat.hpp"

namespace p2x::xnat {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw std::runtime_error("XNAT credentials file " + path + ": " + why);
}

}  // namespace

Credentials read_credentials(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(path, std::string("has mode ") + mode +
                   " (readable or writable by group or others); run chmod 600 " + path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot be opened: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string content = ss.str();
  if (content.size() >= 3 && content.compare(0, 3, "\xEF\xBB\xBF") == 0) content.erase(0, 3);
  std::string t = text::trim(content);
  if (t.empty()) fail(path, "is empty; expected user:password or {\"user\":..,\"password\":..}");

  Credentials c;
  if (t[0] == '{') {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(t);
    } catch (const nlohmann::json::exception&) {
      // The parser's message quotes the text near the error: never pass it on.
      fail(path, "is not valid JSON; expected {\"user\":..,\"password\":..}");
    }
    auto get = [&](const char* key) -> std::string {
      auto it = j.find(key);
      if (it == j.end() || !it->is_string()) return "";
      return it->get<std::string>();
    };
    c.user = get("user");
    if (c.user.empty()) c.user = get("username");
    c.password = get("password");
    if (c.user.empty() || c.password.empty())
      fail(path, "JSON must have non-empty string fields \"user\" and \"password\"");
  } else {
    std::string line = t.substr(0, t.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos)
      fail(path, "first line must be user:password (no ':' found)");
    c.user = text::trim(line.substr(0, colon));
    c.password = line.substr(colon + 1);
    if (c.user.empty()) fail(path, "first line has an empty user name before ':'");
    if (c.password.empty()) fail(path, "first line has an empty password after ':'");
  }
  return c;
}

}  // namespace p2x::xnat
