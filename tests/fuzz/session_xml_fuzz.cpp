// fuzz_session_xml: xnat::detail::parse_session_xml_scan_uids, what verification of a prearchive
// session runs on the session document XNAT (or anything posing as XNAT) answers. Besides
// crashes (DCMTK's recursive XML parser overflowed its stack on 100,000 nested `<!a>`: the
// inputs in session_xml/crashes-found), sanitizer reports and hangs it checks requests.hpp's
// promise: what cannot be read throws XnatError Unreadable (transient, never another exception
// or kind), and what is read maps non-empty scan IDs to UIDs.
#include "expect.hpp"
#include "xnat/requests.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string xml(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& [id, uid] : p2x::xnat::detail::parse_session_xml_scan_uids(xml))
      P2X_FUZZ_EXPECT(!id.empty(), "a scan without ID, UID '" + uid + "'");
  } catch (const p2x::xnat::XnatError& e) {
    P2X_FUZZ_EXPECT(e.kind == p2x::xnat::ErrorKind::Unreadable && e.transient(),
                    std::string(p2x::xnat::to_string(e.kind)) + ": " + e.what());
  }
  return 0;
}
