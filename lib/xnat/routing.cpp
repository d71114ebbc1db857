// The routing text XNAT's DICOM receiver files C-STORE'd instances by (see xnat.hpp).
#include <algorithm>

#include "xnat/xnat.hpp"
#include "text/text.hpp"

namespace p2x::xnat {

namespace {

// XNAT's routing rule reads labels as [A-Za-z0-9_-]+.
bool routable_label(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), text::is_label_char);
}

}  // namespace

std::string routing_comment(const std::string& project, const std::string& subject,
                            const std::string& session) {
  for (const auto* label : {&project, &subject, &session}) {
    if (!routable_label(*label))
      throw XnatError(ErrorKind::BadRequest, 0,
                      "DICOM push: label '" + *label +
                          "' cannot be routed by XNAT's DICOM receiver (letters, digits, _ and "
                          "- only)");
  }
  return "Project: " + project + " Subject: " + subject + " Session: " + session;
}

}  // namespace p2x::xnat
