// xnat/session_xml: the scans of an XNAT session document (the XML XNAT keeps for a session,
// e.g. GET /data/prearchive/projects/P/TS/NAME?format=xml). The prearchive's JSON listings
// give neither a scan's SeriesInstanceUID (/scans has ID, xsiType, series_description only)
// nor the session's scans by UID, so verification of a prearchive session reads them here.
// Parsed with DCMTK's XML parser (ofstd/ofxml.h); element names are matched without their
// namespace prefix (xnat:scan, scan).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/ofstd/ofxml.h>

#include <cstring>

#include "xnat/requests.hpp"

namespace p2x::xnat::detail {

namespace {

constexpr int kMaxDepth = 16;  // a session document is a few levels deep

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
