// The nesting guard of our DICOM connections (see dimse_guard.hpp): a streaming scanner of
// DICOM encodings that counts sequence levels, and the PDU layer that feeds it.
#include "pacs/dimse_guard.hpp"

#include <algorithm>
#include <cstring>

namespace p2x::pacs::detail {

namespace {

constexpr std::uint32_t kUndefined = 0xFFFFFFFFu;
constexpr std::uint16_t kItemGroup = 0xFFFE;
constexpr std::uint16_t kItem = 0xE000, kItemEnd = 0xE00D, kSequenceEnd = 0xE0DD;
constexpr unsigned kAssociateAc = 0x02, kPData = 0x04;
constexpr std::size_t kMaxKeptAc = 1u << 16;

std::uint16_t u16(const unsigned char* p, bool big) {
  return big ? static_cast<std::uint16_t>(p[0] << 8 | p[1])
             : static_cast<std::uint16_t>(p[1] << 8 | p[0]);
}

std::uint32_t u32(const unsigned char* p, bool big) {
  return big ? (std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
                p[3])
             : (std::uint32_t{p[3]} << 24 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[1]} << 8 |
                p[0]);
}

bool explicit_vr(Syntax s) {
  return s != Syntax::ImplicitLittle;
}
bool big_endian(Syntax s) {
  return s == Syntax::ExplicitBig;
}

bool vr_is(const unsigned char* vr, const char* name) {
  return vr[0] == static_cast<unsigned char>(name[0]) &&
         vr[1] == static_cast<unsigned char>(name[1]);
}

// PS3.5 7.1.2: standard VRs; `extended`: those with a 2-byte reserved field and 4-byte length.
bool standard_vr(const unsigned char* vr, bool& extended) {
  static const char* const kExtended[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                          "SV", "UC", "UN", "UR", "UT", "UV"};
  static const char* const kShort[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT",
                                       "FD", "FL", "IS", "LO", "LT", "PN", "SH",
                                       "SL", "SS", "ST", "TM", "UI", "UL", "US"};
  for (const char* v : kExtended)
    if (vr_is(vr, v)) return extended = true;
  for (const char* v : kShort)
    if (vr_is(vr, v)) return !(extended = false);
  return false;
}

}  // namespace

Syntax syntax_of(const std::string& uid) {
  if (uid == "1.2.840.10008.1.2") return Syntax::ImplicitLittle;
  if (uid == "1.2.840.10008.1.2.2") return Syntax::ExplicitBig;
  return Syntax::ExplicitLittle;
}

// --- NestingScanner ---------------------------------------------------------------------------

NestingScanner::NestingScanner(Syntax syntax, int limit) : syntax_(syntax), limit_(limit) {}

Syntax NestingScanner::syntax_here() const {
  return stack_.empty() ? syntax_ : stack_.back().syntax;
}

bool NestingScanner::in_sequence() const {
  return !stack_.empty() && stack_.back().kind != Kind::Item;
}

int NestingScanner::depth() const {
  return static_cast<int>(std::count_if(stack_.begin(), stack_.end(),
                                        [](const Level& l) { return l.kind != Kind::Item; }));
}

void NestingScanner::push(Kind kind, std::uint64_t end, Syntax syntax) {
  stack_.push_back({kind, end, syntax});
  if (kind == Kind::Item) return;
  deepest_ = std::max(deepest_, depth());
  if (deepest_ > limit_) over_ = true;
}

// From here on every item tag counts as one level more (the bytes read so far included): to the
// end of the outermost guessed value around, else to the end of the message.
void NestingScanner::lose() {
  if (lost_) return;
  lost_ = true;
  lost_depth_ = depth();
  patterns_ = 0;
  window_bytes_ = 0;
  lost_until_ = kOpen;
  // The header being read (or interpreted) is counted again from its start, so where the
  // bytes were cut makes no difference.
  const std::vector<unsigned char> seen = stepping_ ? step_header_ : head_;
  head_.clear();
  need_ = 0;
  skip_ = 0;
  pos_ -= seen.size();
  for (std::size_t i = 0; i < stack_.size(); ++i) {
    if (!stack_[i].guessed) continue;
    if (stack_[i].end > pos_) {  // else it cannot be resumed in step: to the end
      lost_until_ = stack_[i].end;
      resume_depth_ = i;
    }
    break;
  }
  const std::size_t counted = feed_lost(seen.data(), seen.size());
  if (counted < seen.size()) feed(seen.data() + counted, seen.size() - counted);  // resumed
}

// The pessimistic count over `size` bytes, up to lost_until_; returns the bytes it took.
std::size_t NestingScanner::feed_lost(const unsigned char* data, std::size_t size) {
  const std::size_t take =
      lost_until_ == kOpen
          ? size
          : static_cast<std::size_t>(std::min<std::uint64_t>(size, lost_until_ - pos_));
  count_patterns(data, take);
  pos_ += take;
  if (lost_until_ != kOpen && pos_ >= lost_until_ && !over_) {
    lost_ = false;  // the guessed value ends: read on after it
    stack_.resize(resume_depth_);
  }
  return take;
}

bool NestingScanner::count_patterns(const unsigned char* data, std::size_t size) {
  for (std::size_t i = 0; i < size && !over_; ++i) {
    window_ = window_ << 8 | data[i];
    if (++window_bytes_ < 4) continue;
    // An item tag (FFFE,E000) as it is written in little or big endian.
    if (window_ == 0xFEFF00E0u || window_ == 0xFFFEE000u) {
      ++patterns_;
      deepest_ = std::max(deepest_, lost_depth_ + patterns_);
      if (lost_depth_ + patterns_ > limit_) over_ = true;
    }
  }
  return !over_;
}

// Ends the defined-length levels this position closes (one whose end falls inside a header or
// value was read wrong: lost).
void NestingScanner::close_finished() {
  while (!stack_.empty() && stack_.back().end != kOpen && pos_ >= stack_.back().end) {
    if (pos_ > stack_.back().end || !head_.empty()) return lose();
    stack_.pop_back();
  }
}

bool NestingScanner::feed(const unsigned char* data, std::size_t size) {
  std::size_t i = 0;
  while (i < size && !over_) {
    if (lost_) {
      i += feed_lost(data + i, size - i);
      continue;
    }
    close_finished();
    if (lost_) continue;
    if (skip_ > 0) {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, size - i));
      skip_ -= take;
      pos_ += take;
      i += take;
      continue;
    }
    if (need_ == 0) {
      want_ = in_sequence() ? Want::ItemHeader : Want::Tag;
      need_ = in_sequence() ? 8 : 4;
    }
    const std::size_t take = std::min(need_ - head_.size(), size - i);
    head_.insert(head_.end(), data + i, data + i + take);
    pos_ += take;
    i += take;
    if (head_.size() == need_) {
      step();
    } else {
      close_finished();  // a header past its level's end: at once, however bytes come
    }
  }
  return !over_;
}

void NestingScanner::step() {
  step_header_ = head_;
  stepping_ = true;
  interpret();
  stepping_ = false;
}

void NestingScanner::interpret() {
  if (!stack_.empty() && stack_.back().end != kOpen && pos_ > stack_.back().end)
    return lose();  // the header runs past its level's end
  const Syntax syn = syntax_here();
  const bool big = big_endian(syn);
  const unsigned char* h = head_.data();
  if (want_ == Want::ItemHeader) {
    const std::uint16_t group = u16(h, big), element = u16(h + 2, big);
    const std::uint32_t length = u32(h + 4, big);
    head_.clear();
    need_ = 0;
    return item_header(group, element, length, syn);
  }
  if (want_ == Want::Peek) {
    const bool pbig = big_endian(peek_syntax_);
    const unsigned char* v = h + value_at_;
    const std::uint16_t group = u16(v, pbig), element = u16(v + 2, pbig);
    const std::uint32_t length = u32(v + 4, pbig);
    head_.clear();
    need_ = 0;
    if (group != kItemGroup || element != kItem) {
      skip_ = length_ - 8;
      return;
    }
    push(Kind::Sequence, pos_ - 8 + length_, peek_syntax_);
    stack_.back().guessed = true;
    return item_header(group, element, length, peek_syntax_);
  }
  const std::uint16_t group = u16(h, big);
  if (want_ == Want::Tag) {
    want_ = Want::ElementHeader;
    need_ = group == kItemGroup || !explicit_vr(syn) ? 8 : 6;
    return;
  }
  if (group == kItemGroup) {  // a delimiter where an element was expected
    const bool open_item =
        !stack_.empty() && stack_.back().kind == Kind::Item && stack_.back().end == kOpen;
    head_.clear();
    need_ = 0;
    if (u16(h + 2, big) == kItemEnd && open_item) return stack_.pop_back();
    return lose();
  }
  if (explicit_vr(syn) && need_ == 6) {
    bool extended = false;
    if (!standard_vr(h + 4, extended))
      return lose();  // DCMTK guesses on: so do we, pessimistically
    need_ = extended ? 12 : 8;
    return;
  }
  element();
}

// A complete element header in head_ (tag, [VR], length) in a data set or item.
void NestingScanner::element() {
  const Syntax syn = syntax_here();
  const bool big = big_endian(syn), explicit_ = explicit_vr(syn);
  const unsigned char* h = head_.data();
  const std::uint16_t group = u16(h, big), element = u16(h + 2, big);
  const std::uint32_t length = !explicit_    ? u32(h + 4, big)
                               : need_ == 12 ? u32(h + 8, big)
                                             : u16(h + 6, big);
  const bool sq = explicit_ && vr_is(h + 4, "SQ"), un = explicit_ && vr_is(h + 4, "UN");
  const std::size_t header = head_.size();
  if (length == kUndefined) {
    head_.clear();
    need_ = 0;
    if (group == 0x7FE0 && element == 0x0010) return push(Kind::PixelSequence, kOpen, syn);
    return push(Kind::Sequence, kOpen, un ? Syntax::ImplicitLittle : syn);
  }
  if (!stack_.empty() && stack_.back().end != kOpen && pos_ + length > stack_.back().end)
    return lose();
  if (sq) {
    head_.clear();
    need_ = 0;
    return push(Kind::Sequence, pos_ + length, syn);
  }
  if ((!explicit_ || un) && length >= 8) {  // a value that may be read as items: look
    want_ = Want::Peek;
    value_at_ = header;
    length_ = length;
    peek_syntax_ = un ? Syntax::ImplicitLittle : syn;
    need_ = header + 8;
    return;
  }
  head_.clear();
  need_ = 0;
  skip_ = length;
}

// An item header (or a delimiter) inside a sequence.
void NestingScanner::item_header(std::uint16_t group, std::uint16_t element, std::uint32_t length,
                                 Syntax syntax) {
  const Level sequence = stack_.back();
  if (group == kItemGroup && element == kSequenceEnd) {
    if (sequence.end != kOpen) return lose();
    return stack_.pop_back();
  }
  if (group != kItemGroup || element != kItem) return lose();
  if (sequence.kind == Kind::PixelSequence) {
    if (length == kUndefined) return lose();
    skip_ = length;
  } else if (length == kUndefined) {
    return push(Kind::Item, kOpen, syntax);
  }
  if (sequence.end != kOpen && pos_ + length > sequence.end) return lose();
  if (sequence.kind != Kind::PixelSequence) push(Kind::Item, pos_ + length, syntax);
}

// --- DimseGuard -------------------------------------------------------------------------------

bool DimseGuard::on_read(const unsigned char* data, std::size_t size) {
  if (!why_.empty()) return false;
  return feed(in_, data, size, true);
}

void DimseGuard::on_write(const unsigned char* data, std::size_t size) {
  feed(out_, data, size, false);
}

bool DimseGuard::feed(Stream& s, const unsigned char* data, std::size_t size, bool incoming) {
  while (size > 0) {
    if (s.header_have < 6) {
      const std::size_t take = std::min(6 - s.header_have, size);
      std::memcpy(s.header + s.header_have, data, take);
      s.header_have += take;
      data += take;
      size -= take;
      if (s.header_have < 6) break;
      s.type = s.header[0];
      s.body_left = u32(s.header + 2, true);
      s.kept.clear();
      s.pdv_have = 0;
      s.pdv_left = 0;
    }
    if (s.type == kPData && incoming) {
      if (!pdata(s, data, size)) return false;
    } else {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(s.body_left, size));
      if (s.type == kAssociateAc && s.kept.size() + take <= kMaxKeptAc)
        s.kept.insert(s.kept.end(), data, data + take);
      data += take;
      size -= take;
      s.body_left -= take;
    }
    if (s.body_left == 0) {
      if (s.type == kAssociateAc) learn_contexts(s.kept);
      s.header_have = 0;
    }
  }
  return true;
}

bool DimseGuard::pdata(Stream& s, const unsigned char*& data, std::size_t& size) {
  while (size > 0 && s.body_left > 0) {
    if (s.pdv_left == 0 && s.pdv_have < 6) {
      const std::size_t take =
          static_cast<std::size_t>(std::min<std::uint64_t>({6 - s.pdv_have, size, s.body_left}));
      std::memcpy(s.pdv + s.pdv_have, data, take);
      s.pdv_have += take;
      data += take;
      size -= take;
      s.body_left -= take;
      if (s.pdv_have == 6) s.pdv_left = std::max<std::uint32_t>(u32(s.pdv, true), 2) - 2;
      if (s.pdv_have < 6 || s.pdv_left > 0) continue;
    }
    const int context = s.pdv[4];
    const bool command = (s.pdv[5] & 1) != 0, last = (s.pdv[5] & 2) != 0;
    const auto key = std::make_pair(context, command);
    auto it = messages_.find(key);
    if (it == messages_.end()) {
      const auto known = contexts_.find(context);
      const Syntax syntax = command                    ? Syntax::ImplicitLittle
                            : known != contexts_.end() ? known->second
                                                       : Syntax::ExplicitLittle;
      it = messages_.emplace(key, NestingScanner(syntax)).first;
    }
    const std::size_t take =
        static_cast<std::size_t>(std::min<std::uint64_t>({s.pdv_left, size, s.body_left}));
    if (!it->second.feed(data, take)) {
      why_ = std::string("its DIMSE ") + (command ? "command" : "data set") +
             " nests sequences more than " + std::to_string(kMaxNesting) +
             " levels deep (DCMTK's parser would overflow its stack)";
      return false;
    }
    data += take;
    size -= take;
    s.body_left -= take;
    s.pdv_left -= take;
    if (s.pdv_left == 0) {
      if (last) messages_.erase(it);
      s.pdv_have = 0;
    }
  }
  return true;
}

void DimseGuard::learn_contexts(const std::vector<unsigned char>& body) {
  std::size_t at = 68;  // protocol version, reserved, AE titles, reserved
  while (at + 4 <= body.size()) {
    const unsigned type = body[at];
    const std::size_t length = u16(&body[at + 2], true);
    const std::size_t value = at + 4, end = std::min(value + length, body.size());
    at = value + length;
    if (type != 0x21 || end < value + 4) continue;
    const int context = body[value];
    const bool accepted = body[value + 2] == 0;
    for (std::size_t sub = value + 4; sub + 4 <= end;) {
      const std::size_t sub_length = u16(&body[sub + 2], true);
      const std::size_t sub_end = std::min(sub + 4 + sub_length, end);
      if (body[sub] == 0x40 && accepted) {
        std::string uid(body.begin() + static_cast<std::ptrdiff_t>(sub + 4),
                        body.begin() + static_cast<std::ptrdiff_t>(sub_end));
        while (!uid.empty() && (uid.back() == '\0' || uid.back() == ' ')) uid.pop_back();
        contexts_[context] = syntax_of(uid);
      }
      sub = sub + 4 + sub_length;
    }
  }
}

}  // namespace p2x::pacs::detail
