// fuzz_xnat_text: XNAT's answers as text: the import service's uri-list and the check of where
// the upload landed, and what an error page (HTML) is reduced to in a message (text_extract,
// failure_message, classify). The first byte chooses the function and its parameters, the rest
// is the body. Besides crashes, sanitizer reports and hangs it checks requests.hpp's promises:
// an import answer is a URI in the project's archive or prearchive, "" for a blank answer (XNAT
// filed nothing), or an XnatError Misrouted or Unreadable (never another exception); an
// extract is short, without control characters.
#include "expect.hpp"
#include "xnat/requests.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

namespace x = p2x::xnat;
namespace d = p2x::xnat::detail;

void check_extract(const std::string& text, std::size_t max_len) {
  P2X_FUZZ_EXPECT(text.size() <= max_len + 3, std::to_string(text.size()) + " characters");
  for (unsigned char c : text) P2X_FUZZ_EXPECT(c >= 0x20 && c != 0x7f, "control character");
}

void import_answer(const std::string& body, bool prearchive) {
  try {
    const std::string uri = d::check_import_uris(body, "P1", prearchive);
    const std::string area = prearchive ? "/prearchive/projects/P1" : "/archive/projects/P1";
    if (uri.empty())  // XNAT filed nothing: only for a blank answer
      P2X_FUZZ_EXPECT(body.find_first_not_of(" \t\r\n") == std::string::npos,
                      "\"\" for a body that is not blank");
    else
      P2X_FUZZ_EXPECT(uri.find(area) != std::string::npos, uri);
  } catch (const x::XnatError& e) {
    P2X_FUZZ_EXPECT(e.kind == x::ErrorKind::Misrouted || e.kind == x::ErrorKind::Unreadable,
                    std::string(x::to_string(e.kind)) + ": " + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const unsigned choice = data[0];
  switch (choice % 4) {
    case 0:
      for (const auto& uri : d::parse_uri_list(body))
        P2X_FUZZ_EXPECT(!uri.empty() && uri[0] != '#', uri);
      break;
    case 1:
      import_answer(body, (choice & 0x10) != 0);
      break;
    case 2: {
      const std::size_t max_len = 1 + choice / 4;
      check_extract(d::text_extract(body, max_len), max_len);
      break;
    }
    default: {
      d::Response r;
      r.status = 100 + static_cast<int>(choice / 4) * 8;
      r.reason = body.substr(0, 40);
      r.body = body;
      const std::string message = d::failure_message("XNAT request", r);
      P2X_FUZZ_EXPECT(message.rfind("XNAT request: HTTP ", 0) == 0, message.substr(0, 80));
      d::classify(r);
      break;
    }
  }
  return 0;
}
