// The nesting guard of our DICOM connections (issue 21, item 2: "every answer from a PACS"):
// DCMTK 3.6.7 parses commands and data sets recursively without a limit, so 100,000 nested
// sequences crashed whatever thread read them. NestingScanner against encodings built byte by
// byte (each transfer syntax, defined and undefined lengths, UN, encapsulated pixel data) and
// against DCMTK's own writing of real data sets; DimseGuard on whole PDU streams; and over the
// network: a raw association that sends our Storage SCP a command nested 100,000 levels deep,
// and a raw PACS that answers our C-FIND with such a data set. Neither crashes us: the
// association ends, the SCP serves the next one, the C-FIND fails with a network error.
#include "pacs/association.hpp"
#include "pacs/dimse_guard.hpp"
#include "pacs/pacs.hpp"
#include "support/assoc_holder.hpp"
#include "support/pacs_fixture.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace p2x;
using pacs::detail::DimseGuard;
using pacs::detail::NestingScanner;
using pacs::detail::Syntax;

namespace {

using Bytes = std::string;

// Little or big endian integers and DICOM elements, byte by byte.
struct Writer {
  Syntax syntax;
  bool big() const { return syntax == Syntax::ExplicitBig; }
  bool explicit_vr() const { return syntax != Syntax::ImplicitLittle; }
  Bytes u16(unsigned v) const {
    Bytes b(2, '\0');
    b[big() ? 0 : 1] = static_cast<char>(v >> 8);
    b[big() ? 1 : 0] = static_cast<char>(v & 0xff);
    return b;
  }
  Bytes u32(std::uint32_t v) const {
    return big() ? u16(v >> 16) + u16(v & 0xffff) : u16(v & 0xffff) + u16(v >> 16);
  }
  Bytes tag(unsigned g, unsigned e) const { return u16(g) + u16(e); }
  // An element header with a 4-byte length (extended VR when explicit).
  Bytes header(unsigned g, unsigned e, const char* vr, std::uint32_t length) const {
    if (!explicit_vr()) return tag(g, e) + u32(length);
    return tag(g, e) + vr + std::string(2, '\0') + u32(length);
  }
  Bytes short_element(unsigned g, unsigned e, const char* vr, const Bytes& value) const {
    if (!explicit_vr()) return tag(g, e) + u32(static_cast<std::uint32_t>(value.size())) + value;
    return tag(g, e) + vr + u16(static_cast<unsigned>(value.size())) + value;
  }
  Bytes item(std::uint32_t length) const { return tag(0xFFFE, 0xE000) + u32(length); }
  Bytes item_end() const { return tag(0xFFFE, 0xE00D) + u32(0); }
  Bytes sequence_end() const { return tag(0xFFFE, 0xE0DD) + u32(0); }
};

// `levels` sequences (0008,1115) nested with undefined lengths, an element in the innermost item.
Bytes deep_undefined(Syntax syntax, int levels) {
  const Writer w{syntax};
  Bytes open, close;
  for (int i = 0; i < levels; ++i) {
    open += w.header(0x0008, 0x1115, "SQ", 0xFFFFFFFF) + w.item(0xFFFFFFFF);
    close += w.item_end() + w.sequence_end();
  }
  return w.short_element(0x0008, 0x0060, "CS", "MR") + open +
         w.short_element(0x0008, 0x1155, "UI", "1.2.3.4") + close;
}

// The same with defined lengths (built from the inside out).
Bytes deep_defined(Syntax syntax, int levels) {
  const Writer w{syntax};
  Bytes inner = w.short_element(0x0008, 0x1155, "UI", "1.2.3.4");
  for (int i = 0; i < levels; ++i) {
    const Bytes item = w.item(static_cast<std::uint32_t>(inner.size())) + inner;
    inner = w.header(0x0008, 0x1115, "SQ", static_cast<std::uint32_t>(item.size())) + item;
  }
  return inner;
}

int depth_of(Syntax syntax, const Bytes& bytes, bool* passed = nullptr, std::size_t chunk = 0) {
  NestingScanner s(syntax);
  bool ok = true;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (chunk == 0) chunk = bytes.size() + 1;
  for (std::size_t at = 0; at < bytes.size() && ok; at += chunk)
    ok = s.feed(p + at, std::min(chunk, bytes.size() - at));
  if (passed) *passed = !ok;
  return s.deepest();
}

const Syntax kSyntaxes[] = {Syntax::ImplicitLittle, Syntax::ExplicitLittle, Syntax::ExplicitBig};

// A real data set with DCMTK: 3 levels of sequences, 500 items at the first, private data and
// encapsulated pixel data with 300 fragments; its encoding in `xfer`.
Bytes dcmtk_encoding(E_TransferSyntax xfer) {
  DcmDataset ds;
  ds.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4.5");
  ds.putAndInsertString(DCM_PatientName, "Doe^Jane");
  auto* outer = new DcmSequenceOfItems(DCM_ReferencedSeriesSequence);
  for (int i = 0; i < 500; ++i) {
    auto* item = new DcmItem();
    item->putAndInsertString(DCM_SeriesInstanceUID, ("1.2.3." + std::to_string(i)).c_str());
    auto* middle = new DcmSequenceOfItems(DCM_ReferencedInstanceSequence);
    auto* mid_item = new DcmItem();
    auto* inner = new DcmSequenceOfItems(DCM_ReferencedImageSequence);
    auto* inner_item = new DcmItem();
    inner_item->putAndInsertString(DCM_ReferencedSOPInstanceUID, "1.2.3.9");
    inner->append(inner_item);
    mid_item->insert(inner);
    middle->append(mid_item);
    item->insert(middle);
    outer->append(item);
  }
  ds.insert(outer);
  ds.putAndInsertString(DcmTag(0x0029, 0x0010, EVR_LO), "P2X TEST");
  const Uint8 priv[16] = {0xFE, 0xFF, 0x00, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  ds.putAndInsertUint8Array(DcmTag(0x0029, 0x1010, EVR_OB), priv, 16);
  if (xfer == EXS_JPEGProcess14SV1) {  // explicit VR little endian, encapsulated pixel data
    auto* pixels = new DcmPixelData(DCM_PixelData);
    auto* sequence = new DcmPixelSequence(DCM_PixelSequenceTag);
    sequence->insert(new DcmPixelItem(DCM_PixelItemTag));  // offset table
    for (int i = 0; i < 300; ++i) {
      auto* fragment = new DcmPixelItem(DCM_PixelItemTag);
      const Uint8 frag[8] = {0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF};
      fragment->putUint8Array(frag, 8);
      sequence->insert(fragment);
    }
    pixels->putOriginalRepresentation(EXS_JPEGProcess14SV1, nullptr, sequence);
    ds.insert(pixels);
  }
  ds.transferInit();
  std::vector<char> buffer(1 << 22);
  DcmOutputBufferStream out(buffer.data(), buffer.size());
  REQUIRE(ds.write(out, xfer, EET_UndefinedLength, nullptr).good());
  ds.transferEnd();
  void* data = nullptr;
  offile_off_t length = 0;
  out.flushBuffer(data, length);
  return Bytes(static_cast<char*>(data), static_cast<std::size_t>(length));
}

}  // namespace

TEST_CASE("nesting scanner: depth in every syntax, defined and undefined lengths",
          "[pacs][guard]") {
  for (const Syntax syntax : kSyntaxes) {
    INFO("syntax " << static_cast<int>(syntax));
    bool passed = false;
    CHECK(depth_of(syntax, deep_undefined(syntax, 5), &passed) == 5);
    CHECK_FALSE(passed);
    CHECK(depth_of(syntax, deep_defined(syntax, 5), &passed) == 5);
    CHECK(depth_of(syntax, deep_undefined(syntax, 64), &passed) == 64);
    CHECK_FALSE(passed);
    depth_of(syntax, deep_undefined(syntax, 65), &passed);
    CHECK(passed);
    depth_of(syntax, deep_defined(syntax, 65), &passed);
    CHECK(passed);
    // The attack: stopped as it passes the limit, fed whole or a few bytes at a time.
    depth_of(syntax, deep_undefined(syntax, 100000), &passed);
    CHECK(passed);
    depth_of(syntax, deep_undefined(syntax, 100000), &passed, 7);
    CHECK(passed);
    // Feeding in pieces finds what feeding at once does.
    for (const std::size_t chunk : {1u, 3u, 13u}) {
      CHECK(depth_of(syntax, deep_defined(syntax, 9), nullptr, chunk) == 9);
      CHECK(depth_of(syntax, deep_undefined(syntax, 9), nullptr, chunk) == 9);
    }
  }
}

TEST_CASE(
    "nesting scanner: what DCMTK might descend into counts, what it does not never hides "
    "depth",
    "[pacs][guard]") {
  const Writer le{Syntax::ExplicitLittle}, im{Syntax::ImplicitLittle};
  // An explicit UN of undefined length is read as implicit VR inside (as DCMTK does).
  const Bytes un = le.header(0x0029, 0x1020, "UN", 0xFFFFFFFF) + im.item(0xFFFFFFFF) +
                   deep_undefined(Syntax::ImplicitLittle, 70) + im.item_end() + im.sequence_end();
  bool passed = false;
  depth_of(Syntax::ExplicitLittle, un, &passed);
  CHECK(passed);
  // An implicit private element of defined length whose value is items: a sequence to DCMTK
  // when its dictionary knows the creator's tag; counted here either way.
  const Bytes inner = deep_defined(Syntax::ImplicitLittle, 66);
  const Bytes priv = im.header(0x0029, 0x1010, "", static_cast<std::uint32_t>(inner.size() + 8)) +
                     im.item(static_cast<std::uint32_t>(inner.size())) + inner;
  depth_of(Syntax::ImplicitLittle, priv, &passed);
  CHECK(passed);
  // Encapsulated pixel data: its fragments are no levels, whatever bytes they hold.
  Bytes pixels = le.header(0x7FE0, 0x0010, "OB", 0xFFFFFFFF) + le.item(0);
  for (int i = 0; i < 1000; ++i) pixels += le.item(8) + im.item(0xFFFFFFFF);
  pixels += le.sequence_end();
  bool pixel_passed = true;
  CHECK(depth_of(Syntax::ExplicitLittle, pixels, &pixel_passed) == 1);
  CHECK_FALSE(pixel_passed);
  // A guessed value that is no items after all: given up at its end, and what follows is
  // read as before (a deep sequence after it is still found; a harmless one passes).
  const Bytes junk = im.item(0x01020304) + "junkjunk";
  const Bytes guessed =
      im.header(0x0029, 0x1010, "", static_cast<std::uint32_t>(junk.size())) + junk;
  depth_of(Syntax::ImplicitLittle, guessed + deep_undefined(Syntax::ImplicitLittle, 65), &passed);
  CHECK(passed);
  Bytes many = guessed + im.header(0x0008, 0x1115, "", 0xFFFFFFFF);
  for (int i = 0; i < 200; ++i) many += im.item(0xFFFFFFFF) + im.item_end();
  many += im.sequence_end();
  NestingScanner after(Syntax::ImplicitLittle);
  CHECK(after.feed(reinterpret_cast<const unsigned char*>(many.data()), many.size()));
  CHECK_FALSE(after.lost());
  CHECK(after.deepest() == 2);  // the guess (1) and its item tag, counted pessimistically
  // Bytes that make no sense from some point on: every later item tag counts.
  Bytes broken = deep_undefined(Syntax::ExplicitLittle, 3);
  broken += le.tag(0x0010, 0x0010) + "??" + le.u16(2) + "ab";  // not a VR
  for (int i = 0; i < 70; ++i) broken += le.item(0xFFFFFFFF);
  NestingScanner s(Syntax::ExplicitLittle);
  CHECK_FALSE(s.feed(reinterpret_cast<const unsigned char*>(broken.data()), broken.size()));
  CHECK(s.lost());
}

TEST_CASE("nesting scanner: real data sets as DCMTK writes them pass, at their depth",
          "[pacs][guard]") {
  const std::pair<E_TransferSyntax, Syntax> cases[] = {
      {EXS_LittleEndianImplicit, Syntax::ImplicitLittle},
      {EXS_LittleEndianExplicit, Syntax::ExplicitLittle},
      {EXS_JPEGProcess14SV1, Syntax::ExplicitLittle},
      {EXS_BigEndianExplicit, Syntax::ExplicitBig}};
  for (const auto& [xfer, syntax] : cases) {
    INFO(DcmXfer(xfer).getXferName());
    const Bytes bytes = dcmtk_encoding(xfer);
    for (const std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{4093}}) {
      bool passed = true;
      NestingScanner s(syntax);
      const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
      const std::size_t step = chunk == 0 ? bytes.size() : chunk;
      for (std::size_t at = 0; at < bytes.size(); at += step)
        passed = s.feed(p + at, std::min(step, bytes.size() - at)) && passed;
      CHECK(passed);
      CHECK_FALSE(s.lost());
      // (In implicit VR the private value that starts like an item is read as items on a
      // guess, given up at its end: reading goes on after it.)
      CHECK(s.deepest() == 3);
    }
  }
}

namespace {

// PDUs as a peer sends them.
Bytes pdu(unsigned char type, const Bytes& body) {
  Bytes out{static_cast<char>(type), '\0'};
  const Writer be{Syntax::ExplicitBig};
  return out + be.u32(static_cast<std::uint32_t>(body.size())) + body;
}

// P-DATA-TF PDUs carrying `message` on context `pcid` in fragments of at most `fragment` bytes.
Bytes pdata(int pcid, bool command, const Bytes& message, std::size_t fragment = 16000) {
  const Writer be{Syntax::ExplicitBig};
  Bytes out;
  for (std::size_t at = 0; at < message.size() || at == 0; at += fragment) {
    const Bytes part = message.substr(at, fragment);
    const bool last = at + fragment >= message.size();
    const char mch = static_cast<char>((command ? 1 : 0) | (last ? 2 : 0));
    Bytes item =
        be.u32(static_cast<std::uint32_t>(part.size() + 2)) + static_cast<char>(pcid) + mch + part;
    out += pdu(0x04, item);
    if (message.empty()) break;
  }
  return out;
}

Bytes sub_item(unsigned char type, const Bytes& value) {
  const Writer be{Syntax::ExplicitBig};
  return Bytes{static_cast<char>(type), '\0'} + be.u16(static_cast<unsigned>(value.size())) + value;
}

// An A-ASSOCIATE-AC accepting context `pcid` with transfer syntax `ts`.
Bytes associate_ac(int pcid, const std::string& ts) {
  const Writer be{Syntax::ExplicitBig};
  Bytes body = be.u16(1) + be.u16(0) + std::string(16, 'A') + std::string(16, 'B') +
               std::string(32, '\0') + sub_item(0x10, "1.2.840.10008.3.1.1.1");
  body += sub_item(0x21, Bytes{static_cast<char>(pcid), '\0', '\0', '\0'} + sub_item(0x40, ts));
  Bytes max_length = be.u32(16384);
  body += sub_item(0x50, sub_item(0x51, max_length));
  return pdu(0x02, body);
}

bool feed_all(DimseGuard& g, const Bytes& bytes, std::size_t chunk) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (std::size_t at = 0; at < bytes.size(); at += chunk)
    if (!g.on_read(p + at, std::min(chunk, bytes.size() - at))) return false;
  return true;
}

}  // namespace

TEST_CASE(
    "dimse guard: the accepted syntax from the A-ASSOCIATE-AC, each message scanned as it "
    "comes",
    "[pacs][guard]") {
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{5}, std::size_t{65536}}) {
    INFO("chunk " << chunk);
    {
      DimseGuard g;  // as SCU: the AC is read
      const Bytes stream = associate_ac(3, std::string("1.2.840.10008.1.2.2") + '\0') +
                           pdata(3, true, deep_undefined(Syntax::ImplicitLittle, 3)) +
                           pdata(3, false, deep_undefined(Syntax::ExplicitBig, 60), 100) +
                           pdata(3, false, deep_undefined(Syntax::ExplicitBig, 64));
      CHECK(feed_all(g, stream, chunk));
      CHECK(g.contexts().at(3) == Syntax::ExplicitBig);
      CHECK_FALSE(feed_all(g, pdata(3, false, deep_undefined(Syntax::ExplicitBig, 100000)), chunk));
      CHECK(g.why().find("data set nests sequences more than 64 levels deep") != std::string::npos);
    }
    {
      DimseGuard g;  // as SCP: the AC is written; a command is always implicit VR
      const Bytes ac = associate_ac(1, "1.2.840.10008.1.2.1");
      g.on_write(reinterpret_cast<const unsigned char*>(ac.data()), ac.size());
      CHECK(g.contexts().at(1) == Syntax::ExplicitLittle);
      CHECK_FALSE(
          feed_all(g, pdata(1, true, deep_undefined(Syntax::ImplicitLittle, 100000)), chunk));
      CHECK(g.why().find("command nests sequences") != std::string::npos);
    }
  }
}

namespace {

// A C-ECHO-RQ command set (implicit VR little endian) carrying `extra` after its elements.
Bytes echo_command(const Bytes& extra) {
  const Writer w{Syntax::ImplicitLittle};
  const Bytes uid = std::string(UID_VerificationSOPClass) + '\0';
  return w.short_element(0x0000, 0x0002, "UI", uid) +
         w.short_element(0x0000, 0x0100, "US", w.u16(0x0030)) +
         w.short_element(0x0000, 0x0110, "US", w.u16(1)) +
         w.short_element(0x0000, 0x0800, "US", w.u16(0x0101)) + extra;
}

}  // namespace

TEST_CASE(
    "dimse guard: a command nested 100,000 levels deep ends its association with our "
    "Storage SCP, which serves the next one",
    "[pacs][guard]") {
  test::TempDir tmp("p2x-guard");
  const std::uint16_t port = test::free_port();
  pacs::ScpOptions opts;
  opts.staging_dir = tmp.file("staging");
  pacs::StorageScp scp("P2XGUARD", port, 4, opts);
  scp.start();
  test::HoldOptions h;
  h.port = port;
  h.called_ae = "P2XGUARD";
  h.calling_ae = "ATTACKER";
  const int fd = test::open_raw_association(h, 5000);
  REQUIRE(fd >= 0);
  const Bytes attack = pdata(1, true, echo_command(deep_undefined(Syntax::ImplicitLittle, 100000)));
  ::send(fd, attack.data(), attack.size(), MSG_NOSIGNAL);  // may stop early: we are cut off
  // The SCP closes the association (or we are told it is aborted) within seconds.
  pollfd p{fd, POLLIN, 0};
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {
    char buf[4096];
    if (::poll(&p, 1, 100) > 0) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      closed = n <= 0 || static_cast<unsigned char>(buf[0]) == 0x07;  // closed or A-ABORT
    }
  }
  ::close(fd);
  CHECK(closed);
  // Still serving: a C-ECHO on a new association.
  pacs::Peer peer;
  peer.ae_title = "P2XGUARD";
  peer.host = "127.0.0.1";
  peer.port = port;
  peer.our_ae = "TESTER";
  CHECK(pacs::Client(peer).echo() > 0);
  scp.stop();
}

namespace {

// A raw PACS on a loopback port: accepts one association (the first proposed context, implicit
// VR), reads one C-FIND-RQ and answers it with a pending response whose identifier is
// `identifier` (implicit VR), then waits for the peer to go.
class RawFindScp {
 public:
  explicit RawFindScp(Bytes identifier) : identifier_(std::move(identifier)) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_, 4) == 0);
    REQUIRE(::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~RawFindScp() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  std::uint16_t port() const { return port_; }

 private:
  // One PDU: type and body ("" type 0 at the end or on error).
  static std::pair<unsigned, Bytes> read_pdu(int fd) {
    unsigned char h[6];
    if (!read_all(fd, h, 6)) return {0, ""};
    const std::size_t n =
        std::size_t{h[2]} << 24 | std::size_t{h[3]} << 16 | std::size_t{h[4]} << 8 | h[5];
    Bytes body(n, '\0');
    if (!read_all(fd, reinterpret_cast<unsigned char*>(body.data()), n)) return {0, ""};
    return {h[0], body};
  }
  static bool read_all(int fd, unsigned char* p, std::size_t n) {
    for (std::size_t got = 0; got < n;) {
      pollfd w{fd, POLLIN, 0};
      if (::poll(&w, 1, 10000) <= 0) return false;
      const ssize_t r = ::recv(fd, p + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<std::size_t>(r);
    }
    return true;
  }
  void serve() {
    pollfd p{listen_, POLLIN, 0};
    while (!stop_ && ::poll(&p, 1, 100) <= 0) {
    }
    if (stop_) return;
    const int fd = ::accept(listen_, nullptr, nullptr);
    const auto [type, rq] = read_pdu(fd);
    if (type != 0x01) return (void)::close(fd);
    // The first presentation context item (0x20) of the request: its ID.
    int pcid = 1;
    for (std::size_t at = 68; at + 4 < rq.size();) {
      const std::size_t len = std::size_t{static_cast<unsigned char>(rq[at + 2])} << 8 |
                              static_cast<unsigned char>(rq[at + 3]);
      if (static_cast<unsigned char>(rq[at]) == 0x20) {
        pcid = static_cast<unsigned char>(rq[at + 4]);
        break;
      }
      at += 4 + len;
    }
    const Bytes ac = associate_ac(pcid, std::string("1.2.840.10008.1.2") + '\0');
    ::send(fd, ac.data(), ac.size(), MSG_NOSIGNAL);
    // The C-FIND-RQ: its command (its MessageID) and identifier.
    Uint16 message_id = 1;
    for (int last_seen = 0; last_seen < 2;) {
      const auto [t, body] = read_pdu(fd);
      if (t != 0x04) return (void)::close(fd);
      const auto mch = static_cast<unsigned char>(body[5]);
      if (mch & 1) message_id = find_message_id(body.substr(6));
      if (mch & 2) ++last_seen;
    }
    const Writer w{Syntax::ImplicitLittle};
    const Bytes uid = std::string(UID_FINDStudyRootQueryRetrieveInformationModel) + '\0';
    const Bytes rsp = w.short_element(0x0000, 0x0002, "UI", uid) +
                      w.short_element(0x0000, 0x0100, "US", w.u16(0x8020)) +
                      w.short_element(0x0000, 0x0120, "US", w.u16(message_id)) +
                      w.short_element(0x0000, 0x0800, "US", w.u16(0x0000)) +
                      w.short_element(0x0000, 0x0900, "US", w.u16(0xFF00));
    const Bytes answer = pdata(pcid, true, rsp) + pdata(pcid, false, identifier_);
    ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    while (!stop_) {  // until the peer goes
      pollfd q{fd, POLLIN, 0};
      char buf[4096];
      if (::poll(&q, 1, 100) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) break;
    }
    ::close(fd);
  }
  // (0000,0110) MessageID in an implicit VR little endian command fragment.
  static Uint16 find_message_id(const Bytes& c) {
    for (std::size_t at = 0; at + 8 <= c.size();) {
      const auto b = [&](std::size_t i) {
        return static_cast<unsigned>(static_cast<unsigned char>(c[i]));
      };
      const unsigned g = b(at) | b(at + 1) << 8, e = b(at + 2) | b(at + 3) << 8;
      const std::size_t len = b(at + 4) | b(at + 5) << 8 | b(at + 6) << 16 | b(at + 7) << 24;
      if (g == 0 && e == 0x0110 && len == 2) return static_cast<Uint16>(b(at + 8) | b(at + 9) << 8);
      at += 8 + len;
    }
    return 1;
  }

  Bytes identifier_;
  int listen_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE(
    "dimse guard: a PACS answering our C-FIND with an identifier nested 100,000 levels "
    "deep fails the query, it does not crash us",
    "[pacs][guard]") {
  pacs::init_network();
  const Writer w{Syntax::ImplicitLittle};
  const Bytes deep = w.short_element(0x0020, 0x000D, "UI", "1.2.3.4") +
                     deep_undefined(Syntax::ImplicitLittle, 100000);
  RawFindScp pacs_side(deep);
  pacs::Peer peer;
  peer.ae_title = "RAWPACS";
  peer.host = "127.0.0.1";
  peer.port = pacs_side.port();
  peer.our_ae = "P2XGUARD";
  peer.timeouts.acse_s = 5;
  peer.timeouts.dimse_s = 10;
  pacs::Query q;
  q.study_uid = "1.2.3.4";
  try {
    pacs::Client(peer).find_studies(q);
    FAIL("the C-FIND succeeded");
  } catch (const pacs::PacsError& e) {
    INFO(e.what());
    CHECK(e.transient());
  }
}
