// xnat/requests: the socket-free layer of the XNAT client. URL parsing, request targets and
// query strings, classification of HTTP answers into XnatError, and parsing of XNAT's JSON
// listings and the import service's uri-list. Everything here is pure and unit-tested.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xnat/xnat.hpp"

namespace p2x::xnat::detail {

struct Url {
  bool tls = false;
  std::string host;                 // without brackets for IPv6 literals
  std::string port;                 // always set ("80"/"443" by default)
  std::string prefix;               // "" or "/xnat" (no trailing slash)
  std::string host_header() const;  // host[:port] as sent in the Host header
};
// Throws std::invalid_argument with a message naming the problem.
Url parse_url(const std::string& url);

using Query = std::vector<std::pair<std::string, std::string>>;
std::string percent_encode(const std::string& s, bool keep_slash = false);
// prefix + path + "?" + k=v&... (values encoded; '/' kept in values for readability).
std::string make_target(const Url& url, const std::string& path, const Query& query = {});
// Path segment encoding for a label or ID inside a path.
std::string seg(const std::string& s);

// "Basic " + base64(user:password).
std::string basic_auth(const std::string& user, const std::string& password);

// An HTTP answer reduced to what the classification needs.
struct Response {
  int status = 0;
  std::string reason;  // as in the status line
  std::string content_type;
  std::string location;  // Location header, if any
  std::vector<std::string> set_cookies;
  std::string body;
};

// A short plain-text extract of an (HTML) error body: tags, scripts and styles removed, entities
// decoded for the common ones, whitespace collapsed, cut at max_len characters.
std::string text_extract(const std::string& body, std::size_t max_len = 240);

// XNAT's own message from an error answer's body: the text of XNAT's (Restlet's) or Tomcat's
// HTML status page without the page's boilerplate ("Status page", "You can get technical
// details here", "Type Status Report", the reason phrase again...); plain text as it is.
// "" when the page holds nothing else. Cut at max_len characters.
std::string error_text(const std::string& body, int status, const std::string& reason,
                       std::size_t max_len = 240);

// The message for a failed answer: "<what>: HTTP 409 Session already exists...: <extract>".
std::string failure_message(const std::string& what, const Response& r);
// Maps a non-2xx answer to its XnatError kind (401 -> Auth, 5xx -> Transient, 3xx -> Protocol...).
ErrorKind classify_status(int status);
// As classify_status, and XNAT's 400 "Concurrent file sends of the same data is not supported."
// (a second send of the same session while one runs) is Transient, unlike the other 400s.
ErrorKind classify(const Response& r);
// Throws XnatError if r is not 2xx.
void check(const std::string& what, const Response& r);

// Import service. No Ignore-Unparsable: XNAT's default (false) refuses a zip with a non-DICOM
// entry, and only validated DICOM files are ever zipped. overwrite_files lets XNAT replace
// files a session already holds (MergeSessionsA refuses them otherwise).
Query import_query(const std::string& project, const std::string& subject,
                   const std::string& session, bool prearchive, bool append,
                   bool overwrite_files = false);
std::vector<std::string> parse_uri_list(const std::string& body);
// Picks the session URI from the import answer and checks it landed where it was sent:
// archive -> /data/archive/projects/P/...; prearchive -> /data/prearchive/projects/P/...
// An empty body is "" (XNAT filed none of the objects: every one dropped by a series import
// filter). Throws XnatError Misrouted (prearchive when archive was asked, project "Unassigned"
// or other than P) or Unreadable (a body with no archive or prearchive URI in it).
std::string check_import_uris(const std::string& body, const std::string& project, bool prearchive);

// Counts and sizes in XNAT's answers are whole numbers from 0 to kMaxCount (2^53 - 1, exact in
// a double, so no sum of a few of them overflows); anything else, and any sum past it, is an
// unreadable answer naming the field.
constexpr std::int64_t kMaxCount = (std::int64_t{1} << 53) - 1;
// Decimal digits only ("12"), at most kMaxCount; nullopt for anything else ("1e3", "-1", "1.0",
// " 1", "").
std::optional<std::int64_t> parse_count(const std::string& text);

// JSON listings ({"ResultSet":{"Result":[...]}}). An answer that is not JSON, is nested more
// than 64 levels, has no ResultSet.Result array, a row that is not an object, a row count other
// than its totalRecords, a row without the key every row of that listing has (ID and label of
// an experiment, ID of a scan, url of a prearchive entry) or a count or size that is not a
// whole number from 0 to kMaxCount throws XnatError Unreadable: it is never read as empty.
std::vector<SessionSummary> parse_experiments(const std::string& json);
std::vector<ScanInfo> parse_scans(const std::string& json);
// Fills series_uid/description/type from a single scan's JSON ({"items":[{"data_fields":..}]});
// Unreadable without items[0].
void parse_scan_item(const std::string& json, ScanInfo& scan);
// Files of /scans/ALL/files: per scan ID, (files, bytes) of its DICOM resources ("DICOM" and
// "secondary", see requests.cpp); files without a collection label are counted too; other
// labelled resources (SNAPSHOTS...) are not.
std::map<std::string, std::pair<std::int64_t, std::int64_t>> parse_scan_files(
    const std::string& json);
// Per scan ID, (files, bytes) from /scans/ALL/resources, or from a prearchive session's
// <session>/resources (category "scans"; session resources skipped): cat_id = the scan ID,
// file_count, file_size; only DICOM resources ("DICOM", "secondary" or unlabelled), summed.
// Throws XnatError Protocol when a row has no cat_id (an XNAT that answers this listing
// differently: use the file listing); Unreadable as the other listings.
std::map<std::string, std::pair<std::int64_t, std::int64_t>> parse_scan_resources(
    const std::string& json);
// The scans (ID, UID, type, description) among the children of an experiment's own JSON
// ({"items":[{"children":[{"field":"scans/scan","items":[{"data_fields":..}]}]}]}). Throws
// XnatError Protocol without items[0] (an XNAT that answers otherwise: list the scans instead),
// Unreadable for an answer that is not JSON or nested too deep.
std::vector<ScanInfo> parse_experiment_scans(const std::string& json);

// Settings. "true"/"false" (plain or JSON, any case) -> the value; anything else nullopt.
std::optional<bool> parse_enabled(const std::string& body);
// The prearchive code as a number ("0", "4", "5"); nullopt when not a number.
std::optional<int> parse_prearchive_code(const std::string& body);

// One entry of /data/prearchive/projects/P.
struct PrearchiveEntry {
  std::string url;  // as XNAT gives it: /prearchive/projects/P/TS/NAME (no /data)
  std::string name, folder, tag, status, subject;
};
std::vector<PrearchiveEntry> parse_prearchive(const std::string& json);
// Scan ID -> SeriesInstanceUID ("" when the scan has none) from an XNAT session document
// (XML: <xnat:scans><xnat:scan ID=".." UID="..">). The prearchive's JSON listings do not carry
// the UIDs. Throws XnatError Unreadable when the text is not well-formed XML, has a DOCTYPE
// (a session document has none: no entity of its can be expanded) or nests elements more than
// 64 levels deep.
std::map<std::string, std::string> parse_session_xml_scan_uids(const std::string& xml);

}  // namespace p2x::xnat::detail
