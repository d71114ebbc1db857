// xnat/session_xml: the scans of an XNAT session document (the XML XNAT keeps for a session,
// e.g. GET /data/prearchive/projects/P/TS/NAME?format=xml). The prearchive's JSON listings
// give neither a scan's SeriesInstanceUID (/scans has ID, xsiType, series_description only)
// nor the session's scans by UID, so verification of a prearchive session reads them here.
// Parsed with DCMTK's XML parser (ofstd/ofxml.h); element names are matched without their
// namespace prefix (xnat:scan, scan).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/ofstd/ofxml.h>

#include <algorithm>
#include <cstring>

#include "xnat/requests.hpp"

namespace p2x::xnat::detail {

namespace {

constexpr int kMaxDepth = 16;          // a session document is a few levels deep
constexpr int kMaxParseDepth = 64;     // refused before parsing (DCMTK's parser recurses:
                                       // 100,000 levels overflow its stack)

// The deepest element nesting of `xml`, never less than the parser will see: quotes inside
// tags, comments, CDATA, declarations and processing instructions are skipped, so no text in
// them can pose as a closing tag. Stops counting once `limit` is passed.
int element_depth(const std::string& xml, int limit) {
  int depth = 0, deepest = 0;
  std::size_t i = 0;
  const std::size_t n = xml.size();
  auto skip_past = [&](const char* end) {
    const std::size_t at = xml.find(end, i);
    i = at == std::string::npos ? n : at + std::strlen(end);
  };
  while (i < n && deepest <= limit) {
    if (xml[i] != '<') { ++i; continue; }
    if (xml.compare(i, 4, "<!--") == 0) { skip_past("-->"); continue; }
    if (xml.compare(i, 9, "<![CDATA[") == 0) { skip_past("]]>"); continue; }
    if (xml.compare(i, 2, "<?") == 0) { skip_past("?>"); continue; }
    const bool closing = i + 1 < n && xml[i + 1] == '/';
    const bool declaration = i + 1 < n && xml[i + 1] == '!';
    char quote = 0, last = 0;
    for (++i; i < n; ++i) {  // to the tag's '>' outside quotes
      const char c = xml[i];
      if (quote) { if (c == quote) quote = 0; continue; }
      if (c == '"' || c == '\'') { quote = c; continue; }
      if (c == '>') break;
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') last = c;
    }
    ++i;
    if (declaration) continue;
    if (closing) { depth = depth > 0 ? depth - 1 : 0; continue; }
    if (last != '/') deepest = std::max(deepest, ++depth);
  }
  return deepest;
}

std::string local_name(const XMLNode& n) {
  const char* name = n.getName();
  if (name == nullptr) return "";
  const char* colon = std::strrchr(name, ':');
  return colon ? colon + 1 : name;
}

void collect_scans(const XMLNode& node, int depth, std::map<std::string, std::string>& out) {
  if (depth > kMaxDepth) return;
  const int n = node.nChildNode();
  for (int i = 0; i < n; ++i) {
    const XMLNode child = node.getChildNode(i);
    if (local_name(child) == "scan" && local_name(node) == "scans") {
      const char* id = child.getAttribute("ID");
      const char* uid = child.getAttribute("UID");
      if (id != nullptr && *id != '\0') out[id] = uid ? uid : "";
      continue;
    }
    collect_scans(child, depth + 1, out);
  }
}

}  // namespace

std::map<std::string, std::string> parse_session_xml_scan_uids(const std::string& xml) {
  if (element_depth(xml, kMaxParseDepth) > kMaxParseDepth)
    throw XnatError(ErrorKind::Protocol, 200,
                    "XNAT returned a session document nested more than " +
                        std::to_string(kMaxParseDepth) + " levels deep");
  XMLResults res{};
  const XMLNode top = XMLNode::parseString(xml.c_str(), nullptr, &res);
  if (res.error != eXMLErrorNone || top.isEmpty())
    throw XnatError(ErrorKind::Protocol, 200,
                    std::string("XNAT returned a session document that is not XML (") +
                        XMLNode::getError(res.error) + " at line " + std::to_string(res.nLine) +
                        ")");
  std::map<std::string, std::string> out;
  collect_scans(top, 0, out);
  return out;
}

}  // namespace p2x::xnat::detail
