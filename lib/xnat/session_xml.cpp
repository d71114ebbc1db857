// xnat/session_xml: the scans of an XNAT session document (the XML XNAT keeps for a session,
// e.g. GET /data/prearchive/projects/P/TS/NAME?format=xml). The prearchive's JSON listings
// give neither a scan's SeriesInstanceUID (/scans has ID, xsiType, series_description only)
// nor the session's scans by UID, so verification of a prearchive session reads them here.
//
// Read with libxml2's streaming reader (xmlTextReader, the XML library DCMTK itself links):
// it walks the document one node at a time without recursion and refuses nesting beyond 256
// levels by itself; we stop at 64. (DCMTK 3.6.7's own XML parser, ofstd/ofxml, recurses once
// per element, declaration and unknown `<!...>` construct and has no depth limit: 100,000
// levels overflowed its stack.) No DTD is loaded, no entity substituted, nothing fetched from
// the network; a document with a DOCTYPE is refused. Element names are matched without their
// namespace prefix (xnat:scan, scan).
#include <libxml/xmlreader.h>

#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "xnat/requests.hpp"

namespace p2x::xnat::detail {

namespace {

constexpr int kMaxDepth = 64;  // a session document is a few levels deep

[[noreturn]] void unreadable(const std::string& why) {
  throw XnatError(ErrorKind::Unreadable, 200, "XNAT returned a session document that " + why);
}

// libxml2 must be initialised once before threads use it (xmlInitParser is not reentrant).
void init_libxml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

struct ReaderCloser {
  void operator()(xmlTextReaderPtr r) const { xmlFreeTextReader(r); }
};
using Reader = std::unique_ptr<xmlTextReader, ReaderCloser>;

// The first error libxml2 reports, with its line. Only a fatal one ends the reading (an
// undeclared namespace prefix, say, is reported but does not).
struct ErrorSink {
  std::string first;
  static void on_error(void* arg, const char* msg, xmlParserSeverities severity,
                       xmlTextReaderLocatorPtr locator) {
    auto* self = static_cast<ErrorSink*>(arg);
    if (!self->first.empty() || msg == nullptr) return;
    if (severity != XML_PARSER_SEVERITY_ERROR) return;
    std::string text = msg;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    self->first = text + " at line " + std::to_string(xmlTextReaderLocatorLineNumber(locator));
  }
};

std::string local_name(xmlTextReaderPtr r) {
  const xmlChar* name = xmlTextReaderConstLocalName(r);
  return name ? reinterpret_cast<const char*>(name) : "";
}

std::string attribute(xmlTextReaderPtr r, const char* name) {
  xmlChar* value = xmlTextReaderGetAttribute(r, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) return "";
  std::string out = reinterpret_cast<const char*>(value);
  xmlFree(value);
  return out;
}

}  // namespace

std::map<std::string, std::string> parse_session_xml_scan_uids(const std::string& xml) {
  init_libxml();
  if (xml.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    unreadable("is too large to read");
  Reader reader(xmlReaderForMemory(xml.data(), static_cast<int>(xml.size()), nullptr, nullptr,
                                   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!reader) unreadable("could not be read (out of memory)");
  ErrorSink errors;
  xmlTextReaderSetErrorHandler(reader.get(), &ErrorSink::on_error, &errors);

  std::map<std::string, std::string> out;
  std::vector<std::string> open;  // local names of the elements around the current node
  int rc = 0;
  while ((rc = xmlTextReaderRead(reader.get())) == 1) {
    const int type = xmlTextReaderNodeType(reader.get());
    const int depth = xmlTextReaderDepth(reader.get());
    if (type == XML_READER_TYPE_DOCUMENT_TYPE) unreadable("has a DOCTYPE");
    if (type != XML_READER_TYPE_ELEMENT) continue;
    if (depth >= kMaxDepth)  // the root element is at depth 0
      unreadable("is nested more than " + std::to_string(kMaxDepth) + " levels deep");
    open.resize(static_cast<std::size_t>(depth));
    const std::string name = local_name(reader.get());
    if (name == "scan" && !open.empty() && open.back() == "scans") {
      const std::string id = attribute(reader.get(), "ID");
      if (!id.empty()) out[id] = attribute(reader.get(), "UID");
    }
    if (!xmlTextReaderIsEmptyElement(reader.get())) open.push_back(name);
  }
  if (rc != 0)
    unreadable("is not well-formed XML (" +
               (errors.first.empty() ? std::string("unreadable") : text_extract(errors.first)) +
               ")");
  return out;
}

}  // namespace p2x::xnat::detail
