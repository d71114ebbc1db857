// lib/config and the credentials file against hostile or careless files (issue 12, item 14):
// nesting is capped before parsing, a number beyond a double names the file and its JSON path,
// and the credentials file refuses UTF-16/UTF-32/NUL bytes and keeps a password as written.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "config/config.hpp"
#include "support/temp_dir.hpp"
#include "xnat/xnat.hpp"

using namespace p2x::config;
using p2x::test::TempDir;
using namespace std::string_literals;

namespace {

std::string error_of_text(const std::string& text) {
  try {
    parse(text, "config.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

std::string credentials_error(const std::string& path) {
  try {
    p2x::xnat::read_credentials(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

std::string write_0600(const TempDir& t, const std::string& name, const std::string& bytes) {
  const std::string path = t.file(name);
  std::ofstream(path, std::ios::binary) << bytes;
  chmod(path.c_str(), 0600);
  return path;
}

// Peak resident memory of this process so far, in MB.
long peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

}  // namespace

TEST_CASE("deep nesting is refused before parsing, at its line and column", "[config][hostile]") {
  const long before = peak_rss_mb();
  const std::string deep = "{\"x\":" + std::string(40000, '[') + std::string(40000, ']') + "}";
  const std::string err = error_of_text(deep);
  CHECK(err ==
        "config.json:1:37: invalid JSON: objects and arrays nested more than 32 levels "
        "deep (a pacs2xnat configuration needs at most 6)");
  CHECK(peak_rss_mb() - before < 100);
  // Brackets inside strings do not count; 32 levels are fine for the parser (then the schema).
  CHECK(error_of_text("{\"ae_title\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}")
            .find("nested") == std::string::npos);
  CHECK(error_of_text(std::string(32, '[') + std::string(32, ']')).find("nested") ==
        std::string::npos);
  CHECK(error_of_text(std::string(33, '[') + std::string(33, ']')).find("nested") !=
        std::string::npos);
}

TEST_CASE("a number beyond a double names the file and the JSON path", "[config][hostile]") {
  CHECK(error_of_text(R"({"limits": {"max_attempts": 1e400}})") ==
        "config.json: limits.max_attempts: invalid JSON: number overflow parsing '1e400'");
  CHECK(error_of_text(R"({"pacs": [{"name": "a"}, {"port": -1e999}]})") ==
        "config.json: pacs[1].port: invalid JSON: number overflow parsing '-1e999'");
  CHECK(error_of_text("1e400") == "config.json: invalid JSON: number overflow parsing '1e400'");
  CHECK(error_of_text(R"({"x": [1, 2, 1e400]})") ==
        "config.json: x[2]: invalid JSON: number overflow parsing '1e400'");
}

TEST_CASE("a huge unknown key is cut short in the message", "[config][hostile]") {
  const std::string key(1000000, 'k');
  const std::string err = error_of_text("{\"" + key + "\": 1}");
  CHECK(err.size() < 1000);
  const std::string cut = std::string(60, 'k') + "\xE2\x80\xA6(1000000 bytes)";
  CHECK(err.find("config.json: " + cut + ": unknown key") == 0);
}

TEST_CASE("credentials: UTF-16, UTF-32 and NUL bytes are refused by name",
          "[config][credentials]") {
  TempDir t("p2x-cred");
  auto wide = [](const std::string& s, std::size_t width, bool little) {
    std::string out;
    for (char c : s) {
      std::string unit(width, '\0');
      unit[little ? 0 : width - 1] = c;
      out += unit;
    }
    return out;
  };
  const std::string text = "alice:secret\n";
  const struct {
    std::string bytes;
    const char* says;
  } cases[] = {
      {"\xFF\xFE"s + wide(text, 2, true), "is UTF-16 encoded"},
      {"\xFE\xFF"s + wide(text, 2, false), "is UTF-16 encoded"},
      {"\xFF\xFE\0\0"s + wide(text, 4, true), "is UTF-32 encoded"},
      {"\0\0\xFE\xFF"s + wide(text, 4, false), "is UTF-32 encoded"},
      {wide(text, 2, true), "contains NUL bytes"},
      {"alice:sec\0ret\n"s, "contains NUL bytes"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const std::string path = write_0600(t, "cred" + std::to_string(i++), c.bytes);
    const std::string err = credentials_error(path);
    INFO(err);
    CHECK(err.find("XNAT credentials file " + path + ": " + c.says) == 0);
    CHECK(err.find("save it as UTF-8") != std::string::npos);
    CHECK(err.find("secret") == std::string::npos);
  }
  const std::string big = write_0600(t, "big", "alice:" + std::string(100000, 'x'));
  CHECK(credentials_error(big).find("is larger than 64 KiB") != std::string::npos);
}

TEST_CASE("credentials: the password is kept as written - only the line ending goes",
          "[config][credentials]") {
  TempDir t("p2x-cred");
  const struct {
    std::string bytes, user, password;
  } cases[] = {
      {"alice:pass word  \n", "alice", "pass word  "},
      {"alice:trailing \r\n", "alice", "trailing "},
      {"alice:no-newline\t", "alice", "no-newline\t"},
      {"\n\n  bob : spaced\n", "bob", " spaced"},
      {"\xEF\xBB\xBF"
       "carol:pw\r\nignored\n",
       "carol", "pw"},
      {" {\"user\": \"dave\", \"password\": \"ends \"}\n", "dave", "ends "},
  };
  int i = 0;
  for (const auto& c : cases) {
    const std::string path = write_0600(t, "cred" + std::to_string(i++), c.bytes);
    INFO(c.bytes);
    const auto cred = p2x::xnat::read_credentials(path);
    CHECK(cred.user == c.user);
    CHECK(cred.password == c.password);
  }
}
