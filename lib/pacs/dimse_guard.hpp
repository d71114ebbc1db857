// Internal: a guard on every DICOM connection of ours (Storage SCP, C-FIND/C-MOVE/C-GET SCU,
// C-STORE SCU) against data sets that nest sequences deeper than DCMTK can parse. DCMTK 3.6.7
// reads a command or data set recursively, one level per sequence and item, with no limit:
// 100,000 nested sequences (2.4 MB) overflow the stack of the thread that reads them, i.e.
// crash the daemon. The guard sees the bytes before DCMTK does (in our transport connection,
// prompt_ack.hpp), follows the PDUs, learns each accepted presentation context's transfer
// syntax from the A-ASSOCIATE-AC (read as SCU, written as SCP) and scans each DIMSE message's
// command and data set as they stream in (NestingScanner). A message nested more than
// kMaxNesting sequences deep closes the connection before DCMTK reads the level that passes it:
// the association ends with a network error, the daemon goes on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace p2x::pacs::detail {

// Real data sets nest a handful of sequences; DCMTK survives tens of thousands.
constexpr int kMaxNesting = 64;

enum class Syntax { ImplicitLittle, ExplicitLittle, ExplicitBig };
// The encoding of a data set in transfer syntax `uid` (every syntax but the two named ones,
// compressed ones included, encodes the data set as explicit VR little endian).
Syntax syntax_of(const std::string& uid);

// How deep sequences nest in one command or data set, read as it streams in, never less deep
// than DCMTK's parser would recurse: undefined-length elements count as sequences (but the
// encapsulated Pixel Data, whose items DCMTK does not descend into), so do defined-length ones
// of VR SQ, and implicit-VR or UN ones whose value starts with an item; an explicit UN of
// undefined length is read as implicit VR little endian inside, as DCMTK does. Once the bytes
// stop making sense (DCMTK stops there too with its default strictness, but one may not rely
// on that) every later item tag counts as one level more, so nothing after that point can hide
// depth; inside a defined-length value that was only read as items on a guess (DCMTK reads it
// as bytes unless its dictionary says SQ, and then stops at the same fault) that count ends
// with the value, and reading goes on after it.
class NestingScanner {
 public:
  explicit NestingScanner(Syntax syntax, int limit = kMaxNesting);
  // Feeds the next bytes; false once the nesting passed the limit (and from then on).
  bool feed(const unsigned char* data, std::size_t size);
  int deepest() const { return deepest_; }
  bool lost() const { return lost_; }  // read on in the pessimistic count

 private:
  static constexpr std::uint64_t kOpen = ~std::uint64_t{0};
  enum class Kind { Sequence, PixelSequence, Item };
  struct Level {
    Kind kind;
    std::uint64_t end;  // kOpen: undefined length
    Syntax syntax;
    bool guessed = false;  // a defined-length value read as items on a guess
  };
  enum class Want { Tag, ElementHeader, ItemHeader, Peek };

  void close_finished();
  void step();
  void interpret();
  void element();
  void item_header(std::uint16_t group, std::uint16_t element, std::uint32_t length, Syntax syntax);
  void push(Kind kind, std::uint64_t end, Syntax syntax);
  void lose();
  bool count_patterns(const unsigned char* data, std::size_t size);
  std::size_t feed_lost(const unsigned char* data, std::size_t size);
  Syntax syntax_here() const;
  bool in_sequence() const;
  int depth() const;

  Syntax syntax_;
  int limit_;
  std::vector<Level> stack_;
  std::uint64_t pos_ = 0, skip_ = 0;
  std::vector<unsigned char> head_;
  std::vector<unsigned char> step_header_;  // the header step() interprets
  bool stepping_ = false;
  std::size_t need_ = 0;
  Want want_ = Want::Tag;
  std::size_t value_at_ = 0;  // Peek: where the element's value starts in head_
  std::uint32_t length_ = 0;  // Peek: the element's length
  Syntax peek_syntax_ = Syntax::ImplicitLittle;
  int deepest_ = 0;
  bool over_ = false, lost_ = false;
  std::uint64_t lost_until_ = kOpen;  // the pessimistic count ends here (a guessed value's end)
  std::size_t resume_depth_ = 0;      // ... and reading goes on with this many levels
  int lost_depth_ = 0, patterns_ = 0;
  std::uint32_t window_ = 0;  // the last 4 bytes, in the pessimistic count
  int window_bytes_ = 0;
};

// One connection's PDUs, both ways (see above). Socket-free: fed by the connection.
class DimseGuard {
 public:
  // Bytes the peer sent, in order. False when the connection must close (why() says why).
  bool on_read(const unsigned char* data, std::size_t size);
  // Bytes we send, in order (only an A-ASSOCIATE-AC is read: the contexts we accepted).
  void on_write(const unsigned char* data, std::size_t size);
  const std::string& why() const { return why_; }
  // The transfer syntax accepted for a presentation context (tests).
  const std::map<int, Syntax>& contexts() const { return contexts_; }

 private:
  // One direction's PDU stream: header, then the body handled by its type.
  struct Stream {
    unsigned char header[6] = {};
    std::size_t header_have = 0;
    unsigned type = 0;
    std::uint64_t body_left = 0;
    std::vector<unsigned char> kept;  // an A-ASSOCIATE-AC's body (bounded)
    unsigned char pdv[6] = {};        // P-DATA-TF: the current PDV item's header
    std::size_t pdv_have = 0;
    std::uint64_t pdv_left = 0;
  };
  bool feed(Stream& s, const unsigned char* data, std::size_t size, bool incoming);
  bool pdata(Stream& s, const unsigned char*& data, std::size_t& size);
  void learn_contexts(const std::vector<unsigned char>& ac_body);

  Stream in_, out_;
  std::map<int, Syntax> contexts_;
  std::map<std::pair<int, bool>, NestingScanner> messages_;  // (context, command) -> scanner
  std::string why_;
};

}  // namespace p2x::pacs::detail
