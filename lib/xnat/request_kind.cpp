// xnat/request_kind: see request_kind.hpp.
#include "xnat/request_kind.hpp"

namespace p2x::xnat::detail {

std::string request_kind(const std::string& target) {
  const std::string path = target.substr(0, target.find('?'));
  const auto has = [&path](const char* part) { return path.find(part) != std::string::npos; };
  if (has("/data/JSESSION")) return "login";
  if (has("/data/services/import")) return "import";
  if (has("/data/prearchive")) return "prearchive";
  if (has("/xapi/")) return "settings";
  if (has("/experiments") || has("/scans") || has("/resources") || has("/files")) return "session";
  if (has("/data/projects/")) return "project";
  if (has("/data/projects")) return "projects";
  return "other";
}

}  // namespace p2x::xnat::detail
