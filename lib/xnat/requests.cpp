// xnat/requests: socket-free request building and answer parsing (see requests.hpp).
#include "xnat/requests.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "text/text.hpp"

namespace p2x::xnat {

const char* to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::Transient:
      return "transient";
    case ErrorKind::Auth:
      return "auth";
    case ErrorKind::Forbidden:
      return "forbidden";
    case ErrorKind::NotFound:
      return "not_found";
    case ErrorKind::Conflict:
      return "conflict";
    case ErrorKind::BadRequest:
      return "bad_request";
    case ErrorKind::Other4xx:
      return "client_error";
    case ErrorKind::Tls:
      return "tls";
    case ErrorKind::Misrouted:
      return "misrouted";
    case ErrorKind::Protocol:
      return "protocol";
    case ErrorKind::Unreadable:
      return "unreadable";
  }
  return "unknown";
}

}  // namespace p2x::xnat

namespace p2x::xnat::detail {
namespace {

bool all_digits(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

std::string Url::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if ((tls && port != "443") || (!tls && port != "80")) h += ":" + port;
  return h;
}

Url parse_url(const std::string& text) {
  Url u;
  std::string rest;
  std::string low = text::to_lower(text);
  if (low.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = text.substr(8);
  } else if (low.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else {
    throw std::invalid_argument("XNAT URL '" + text + "' must start with http:// or https://");
  }
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string::npos)
    throw std::invalid_argument(
        "XNAT URL must not contain user information; put credentials in the credentials file");
  if (path.find_first_of("?#") != std::string::npos)
    throw std::invalid_argument("XNAT URL '" + text + "' must not contain a query or fragment");
  if (!authority.empty() && authority[0] == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos)
      throw std::invalid_argument("XNAT URL '" + text + "' has an unterminated IPv6 address");
    u.host = authority.substr(1, close - 1);
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') throw std::invalid_argument("XNAT URL '" + text + "' is malformed");
      u.port = after.substr(1);
    }
  } else {
    auto colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty()) throw std::invalid_argument("XNAT URL '" + text + "' has no host");
  if (u.port.empty()) {
    if (authority.find(':') != std::string::npos && authority.back() == ':')
      throw std::invalid_argument("XNAT URL '" + text + "' has an empty port");
    u.port = u.tls ? "443" : "80";
  }
  if (!all_digits(u.port) || u.port.size() > 5 || std::stoi(u.port) == 0 ||
      std::stoi(u.port) > 65535)
    throw std::invalid_argument("XNAT URL '" + text + "' has an invalid port '" + u.port + "'");
  while (!path.empty() && path.back() == '/') path.pop_back();
  // Accept a URL that already ends in /data (a common copy-paste): the client adds /data itself.
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, "/data") == 0)
    path.resize(path.size() - 5);
  u.prefix = path;
  return u;
}

std::string percent_encode(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string seg(const std::string& s) {
  return percent_encode(s, false);
}

std::string make_target(const Url& url, const std::string& path, const Query& query) {
  std::string t = url.prefix + path;
  char sep = '?';
  for (const auto& [k, v] : query) {
    t += sep;
    t += percent_encode(k);
    t += '=';
    t += percent_encode(v, true);
    sep = '&';
  }
  return t;
}

std::string basic_auth(const std::string& user, const std::string& password) {
  return "Basic " + text::base64_encode(user + ":" + password);
}

std::string text_extract(const std::string& body, std::size_t max_len) {
  std::string out;
  std::string low = text::to_lower(body);
  bool space = false;
  auto emit = [&](char c) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      space = !out.empty();
      return;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  };
  for (std::size_t i = 0; i < body.size() && out.size() < max_len;) {
    char c = body[i];
    if (c == '<') {
      // Drop script/style/head-title elements entirely; other tags become a space.
      for (const char* skip : {"script", "style"}) {
        std::string open = std::string("<") + skip;
        if (low.compare(i, open.size(), open) == 0) {
          auto end = low.find(std::string("</") + skip, i);
          i = end == std::string::npos ? body.size() : end;
          break;
        }
      }
      auto close = body.find('>', i);
      i = close == std::string::npos ? body.size() : close + 1;
      space = !out.empty();
      continue;
    }
    if (c == '&') {
      static const std::pair<const char*, char> ents[] = {
          {"&amp;", '&'},  {"&lt;", '<'},    {"&gt;", '>'},  {"&quot;", '"'},
          {"&#39;", '\''}, {"&apos;", '\''}, {"&nbsp;", ' '}};
      bool done = false;
      for (const auto& [name, ch] : ents) {
        std::string n = name;
        if (low.compare(i, n.size(), n) == 0) {
          emit(ch);
          i += n.size();
          done = true;
          break;
        }
      }
      if (done) continue;
    }
    emit(c);
    ++i;
  }
  if (out.size() > max_len) out.resize(max_len);
  if (out.size() == max_len) out += "...";
  return out;
}

ErrorKind classify_status(int status) {
  if (status >= 500) return ErrorKind::Transient;
  switch (status) {
    case 400:
      return ErrorKind::BadRequest;
    case 401:
      return ErrorKind::Auth;
    case 403:
      return ErrorKind::Forbidden;
    case 404:
      return ErrorKind::NotFound;
    case 409:
      return ErrorKind::Conflict;
    case 408:  // request timeout
    case 429:  // too many requests
      return ErrorKind::Transient;
    default:
      break;
  }
  if (status >= 400) return ErrorKind::Other4xx;
  return ErrorKind::Protocol;  // 1xx/3xx or anything unexpected
}

std::string failure_message(const std::string& what, const Response& r) {
  std::string msg = what + ": HTTP " + std::to_string(r.status);
  std::string reason = text::trim(r.reason);
  if (!reason.empty()) msg += " " + reason;
  if (r.status >= 300 && r.status < 400 && !r.location.empty())
    msg += " (redirected to " + r.location + "; use that address as the XNAT URL)";
  std::string extract = error_text(r.body, r.status, r.reason);
  if (!extract.empty() && !text::iequals(extract, reason)) msg += ": " + extract;
  return msg;
}

ErrorKind classify(const Response& r) {
  if (r.status == 400) {
    const std::string text = text::to_lower(r.reason + " " + text_extract(r.body, 400));
    if (text.find("concurrent file send") != std::string::npos) return ErrorKind::Transient;
  }
  return classify_status(r.status);
}

void check(const std::string& what, const Response& r) {
  if (r.status >= 200 && r.status < 300) return;
  throw XnatError(classify(r), r.status, failure_message(what, r));
}

Query import_query(const std::string& project, const std::string& subject,
                   const std::string& session, bool prearchive, bool append, bool overwrite_files) {
  Query q{{"import-handler", "DICOM-zip"}, {"inbody", "true"},
          {"PROJECT_ID", project},         {"SUBJECT_ID", subject},
          {"EXPT_LABEL", session},         {"dest", prearchive ? "/prearchive" : "/archive"}};
  if (append) q.emplace_back("overwrite", "append");
  if (overwrite_files) q.emplace_back("overwrite_files", "true");
  return q;
}

std::vector<std::string> parse_uri_list(const std::string& body) {
  std::vector<std::string> uris;
  std::size_t pos = 0;
  while (pos <= body.size()) {
    auto nl = body.find('\n', pos);
    const auto len = nl == std::string::npos ? std::string::npos : nl - pos;
    std::string line = text::trim(std::string_view(body).substr(pos, len));
    if (!line.empty() && line[0] != '#') uris.push_back(line);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return uris;
}

namespace {

// "/data/archive/projects/P/..." or "http://h/xnat/data/prearchive/projects/P/..." ->
// {"archive"|"prearchive", "P"}; {"", ""} when neither.
std::pair<std::string, std::string> where(const std::string& uri) {
  for (const char* area : {"/prearchive/projects/", "/archive/projects/"}) {
    auto p = uri.find(area);
    if (p == std::string::npos) continue;
    auto start = p + std::string(area).size();
    auto end = uri.find('/', start);
    std::string name = std::string(area).substr(1, std::string(area).find('/', 1) - 1);
    return {name, uri.substr(start, end == std::string::npos ? std::string::npos : end - start)};
  }
  return {"", ""};
}

}  // namespace

std::string check_import_uris(const std::string& body, const std::string& project,
                              bool prearchive) {
  auto uris = parse_uri_list(body);
  // XNAT filed nothing (DicomZipImporter answers an empty list when a series import filter
  // dropped every object): not an error here; verification finds what is missing. Only blank
  // space is empty: other bytes (NULs, control characters) are an answer we cannot read.
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return {};
  if (uris.empty())
    throw XnatError(ErrorKind::Unreadable, 200,
                    "XNAT accepted the upload but returned no session URI: " + text_extract(body));
  const std::string wanted = prearchive ? "prearchive" : "archive";
  std::string found;
  for (const auto& u : uris) {
    auto [area, proj] = where(u);
    if (area.empty() || proj.empty()) continue;  // not a session's URI
    if (proj == "Unassigned" || proj != project)
      throw XnatError(ErrorKind::Misrouted, 200,
                      "XNAT filed the upload under project '" + proj + "' instead of '" + project +
                          "' (" + u +
                          "); check that the project exists and the user may write to it");
    if (area != wanted)
      throw XnatError(ErrorKind::Misrouted, 200,
                      "XNAT put the upload into the " + area + " instead of the " + wanted + " (" +
                          u + "); check the project's prearchive settings and the prearchive");
    if (found.empty()) found = u;
  }
  if (found.empty())
    throw XnatError(ErrorKind::Unreadable, 200,
                    "XNAT accepted the upload but returned no archive or prearchive URI: " +
                        text_extract(body));
  return found;
}

namespace {

using nlohmann::json;

// A JSON answer nested deeper than this is refused before it is parsed (XNAT's are a few levels
// deep; nlohmann/json parses iteratively, but copying, printing or comparing such a value
// recurses once per level).
constexpr std::size_t kMaxJsonDepth = 64;

[[noreturn]] void unreadable(const std::string& message) {
  throw XnatError(ErrorKind::Unreadable, 200, message);
}

// XNAT keeps a scan's DICOM files in up to two resources: "DICOM" for primary imaging SOP
// classes and "secondary" for every other one (dose reports, secondary captures, KO, PR, RT
// structures and plans, PDFs: dicom-xnat's CatalogBuilder with SOPModel.isPrimaryImagingSOP,
// site preference separateSecondaryDicomOnArchive; DefaultCatalogService looks up "DICOM",
// then "secondary"). Both count, and files of a resource without a label; other resources
// (SNAPSHOTS, NIFTI, ... added by pipelines) never do.
bool is_dicom_resource(const std::string& label) {
  return label.empty() || text::iequals(label, "dicom") || text::iequals(label, "secondary");
}

json parse_json(const std::string& text, const char* what) {
  if (text::json_nesting_depth(text, kMaxJsonDepth) > kMaxJsonDepth)
    unreadable(std::string("XNAT returned JSON nested more than ") + std::to_string(kMaxJsonDepth) +
               " levels deep for " + what);
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    unreadable(std::string("XNAT returned unparsable JSON for ") + what + ": " +
               text_extract(text, 120));
  }
}

// The rows of a listing: ResultSet.Result, every row an object, as many as ResultSet's
// totalRecords says where XNAT gives it (a listing cut short is no listing).
const json& results(const json& j, const char* what) {
  const json* rows = nullptr;
  if (j.is_object()) {
    auto rs = j.find("ResultSet");
    if (rs != j.end() && rs->is_object()) {
      auto r = rs->find("Result");
      if (r != rs->end() && r->is_array()) rows = &*r;
      auto total = rs->find("totalRecords");
      if (rows && total != rs->end() && !total->is_null() &&
          !(total->is_string()
                ? total->get_ref<const std::string&>() == std::to_string(rows->size())
                : total->is_number_unsigned() && total->get<std::size_t>() == rows->size()))
        unreadable(std::string("XNAT's ") + what + " says " + text::abbreviate(total->dump()) +
                   " rows but holds " + std::to_string(rows->size()));
    }
  }
  if (!rows) unreadable(std::string("XNAT returned JSON without ResultSet.Result for ") + what);
  for (const auto& row : *rows)
    if (!row.is_object())
      unreadable(std::string("XNAT's ") + what +
                 " has a row that is not an object: " + text::abbreviate(row.dump()));
  return *rows;
}

std::string str(const json& item, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = item.find(k);
    if (it == item.end() || it->is_null()) continue;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_unsigned()) return std::to_string(it->get<std::uint64_t>());
    if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
    if (it->is_number()) return it->dump();
  }
  return "";
}

// A field every row of a listing has: its text, or an unreadable answer.
std::string required_str(const json& item, const char* key, const char* what) {
  std::string v = str(item, {key});
  if (v.empty())
    unreadable(std::string("XNAT's ") + what + " has a row without " + key + ": " +
               text::abbreviate(item.dump()));
  return v;
}

// A count or size: a whole number from 0 to kMaxCount (JSON number or decimal text; absent,
// null or "" is 0), else an unreadable answer naming the field. `what`: the listing and row.
std::int64_t count_field(const nlohmann::json& item, const char* key, const std::string& what) {
  auto it = item.find(key);
  if (it == item.end() || it->is_null()) return 0;
  std::optional<std::int64_t> v;
  if (it->is_number_unsigned()) {
    if (it->get<std::uint64_t>() <= static_cast<std::uint64_t>(kMaxCount))
      v = static_cast<std::int64_t>(it->get<std::uint64_t>());
  } else if (it->is_number_integer()) {
    if (it->get<std::int64_t>() >= 0 && it->get<std::int64_t>() <= kMaxCount)
      v = it->get<std::int64_t>();
  } else if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    if (s.empty()) return 0;  // XNAT leaves a resource's count empty when it has none cached
    v = parse_count(s);
  }
  if (!v)
    unreadable("XNAT's " + what + ": " + key + " " + text::abbreviate(it->dump()) +
               " is not a whole number from 0 to " + std::to_string(kMaxCount));
  return *v;
}

// a + b, or an unreadable answer when the sum passes kMaxCount.
std::int64_t add_counts(std::int64_t a, std::int64_t b, const std::string& what) {
  if (a < 0 || b < 0 || a > kMaxCount - b)
    unreadable("XNAT's " + what + " add up to more than " + std::to_string(kMaxCount));
  return a + b;
}

}  // namespace

std::optional<std::int64_t> parse_count(const std::string& text) {
  if (text.empty() || text.size() > 16 || !all_digits(text)) return std::nullopt;
  const std::int64_t v = std::stoll(text);
  if (v > kMaxCount) return std::nullopt;
  return v;
}

std::vector<SessionSummary> parse_experiments(const std::string& text) {
  constexpr const char* what = "experiment listing";
  json j = parse_json(text, "the experiment listing");
  std::vector<SessionSummary> out;
  for (const auto& item : results(j, what)) {
    SessionSummary s;
    s.id = required_str(item, "ID", what);
    s.label = required_str(item, "label", what);
    s.subject_label = str(item, {"subject_label", "xnat:subjectdata/label"});
    s.study_uid = str(item, {"UID", "uid"});
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<ScanInfo> parse_scans(const std::string& text) {
  constexpr const char* what = "scan listing";
  json j = parse_json(text, "the scan listing");
  std::vector<ScanInfo> out;
  for (const auto& item : results(j, what)) {
    ScanInfo s;
    s.id = required_str(item, "ID", what);
    s.type = str(item, {"type"});
    s.description = str(item, {"series_description"});
    s.series_uid = str(item, {"UID", "uid"});
    out.push_back(std::move(s));
  }
  return out;
}

void parse_scan_item(const std::string& text, ScanInfo& scan) {
  json j = parse_json(text, "a scan");
  auto items = j.find("items");
  if (items == j.end() || !items->is_array() || items->empty() || !(*items)[0].is_object())
    unreadable("XNAT returned a scan without items[0]: " + text_extract(text, 120));
  const json& item = (*items)[0];
  auto df = item.find("data_fields");
  const json& f = (df != item.end() && df->is_object()) ? *df : item;
  if (auto v = str(f, {"UID"}); !v.empty()) scan.series_uid = v;
  if (scan.description.empty()) scan.description = str(f, {"series_description"});
  if (scan.type.empty()) scan.type = str(f, {"type"});
}

std::map<std::string, std::pair<std::int64_t, std::int64_t>> parse_scan_files(
    const std::string& text) {
  json j = parse_json(text, "the file listing");
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> out;
  for (const auto& item : results(j, "file listing")) {
    if (!item.is_object()) continue;
    std::string uri = str(item, {"URI"});
    auto p = uri.find("/scans/");
    if (p == std::string::npos) continue;
    auto start = p + 7;
    auto end = uri.find('/', start);
    std::string scan =
        uri.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (scan.empty()) continue;
    if (!is_dicom_resource(str(item, {"collection"}))) continue;
    auto& [files, bytes] = out[scan];
    const std::string row = "file listing (scan " + scan + ")";
    files = add_counts(files, 1, row + "'s files");
    bytes = add_counts(bytes, count_field(item, "Size", row), row + "'s sizes");
  }
  return out;
}

std::map<std::string, std::pair<std::int64_t, std::int64_t>> parse_scan_resources(
    const std::string& text) {
  json j = parse_json(text, "the scan resource listing");
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> out;
  for (const auto& item : results(j, "scan resource listing")) {
    if (!item.is_object()) continue;
    std::string scan = str(item, {"cat_id"});
    if (scan.empty())
      throw XnatError(ErrorKind::Protocol, 200, "XNAT's scan resource listing has no cat_id");
    // The prearchive's session listing (<session>/resources) also has session resources.
    const std::string category = str(item, {"category"});
    if (!category.empty() && category != "scans") continue;
    if (!is_dicom_resource(str(item, {"label"}))) continue;
    auto& [files, bytes] = out[scan];
    const std::string row = "scan resource listing (scan " + scan + ")";
    files = add_counts(files, count_field(item, "file_count", row), row + "'s file counts");
    bytes = add_counts(bytes, count_field(item, "file_size", row), row + "'s sizes");
  }
  return out;
}

std::vector<ScanInfo> parse_experiment_scans(const std::string& text) {
  json j = parse_json(text, "a session");
  auto items = j.find("items");
  if (items == j.end() || !items->is_array() || items->empty() || !(*items)[0].is_object())
    throw XnatError(ErrorKind::Protocol, 200, "XNAT returned a session without items[0]");
  std::vector<ScanInfo> out;
  auto children = (*items)[0].find("children");
  if (children == (*items)[0].end() || !children->is_array()) return out;
  for (const auto& child : *children) {
    if (!child.is_object() || str(child, {"field"}) != "scans/scan") continue;
    auto kids = child.find("items");
    if (kids == child.end() || !kids->is_array()) continue;
    for (const auto& kid : *kids) {
      if (!kid.is_object()) continue;
      auto df = kid.find("data_fields");
      const json& f = (df != kid.end() && df->is_object()) ? *df : kid;
      ScanInfo s;
      s.id = str(f, {"ID", "id"});
      s.series_uid = str(f, {"UID"});
      s.type = str(f, {"type"});
      s.description = str(f, {"series_description"});
      if (!s.id.empty()) out.push_back(std::move(s));
    }
  }
  return out;
}

std::optional<bool> parse_enabled(const std::string& body) {
  std::string v = text::to_lower(text::trim(body));
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v == "true") return true;
  if (v == "false") return false;
  return std::nullopt;
}

std::optional<int> parse_prearchive_code(const std::string& body) {
  std::string v = text::trim(body);
  if (!all_digits(v) || v.size() > 3) return std::nullopt;
  return std::stoi(v);
}

std::vector<PrearchiveEntry> parse_prearchive(const std::string& text) {
  constexpr const char* what = "prearchive listing";
  json j = parse_json(text, "the prearchive listing");
  std::vector<PrearchiveEntry> out;
  for (const auto& item : results(j, what)) {
    PrearchiveEntry e;
    e.url = required_str(item, "url", what);
    e.name = str(item, {"name"});
    e.folder = str(item, {"folderName"});
    e.tag = str(item, {"tag"});
    e.status = str(item, {"status"});
    e.subject = str(item, {"subject"});
    if (!e.url.empty()) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace p2x::xnat::detail
