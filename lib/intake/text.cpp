// intake/text: UTF-8 checking and cleaning of CSV cell text.
#include "intake/text.hpp"

#include "text/text.hpp"

namespace p2x::intake::detail {

namespace {

enum class Kind { Keep, Space, Drop };

Kind classify(char32_t cp) {
  if (cp < 0x80) {
    if (cp >= 0x20 && cp < 0x7F) return Kind::Keep;
    if (cp == '\t' || cp == '\n' || cp == '\r') return Kind::Space;
    return Kind::Drop;  // NUL, form feed, vertical tab, other C0 controls, DEL
  }
  if (cp <= 0x9F) return Kind::Drop;  // C1 controls
  switch (cp) {
    case 0x00A0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return Kind::Space;
    case 0x00AD:
    case 0x180E:
    case 0xFEFF:
      return Kind::Drop;
    default:
      break;
  }
  if (cp >= 0x2000 && cp <= 0x200A) return Kind::Space;  // en quad .. hair space
  if (cp >= 0x200B && cp <= 0x200F) return Kind::Drop;   // ZWSP, ZWNJ, ZWJ, LRM, RLM
  if (cp >= 0x202A && cp <= 0x202E) return Kind::Drop;   // bidi embeddings/overrides
  if (cp >= 0x2060 && cp <= 0x206F) return Kind::Drop;   // word joiner, invisible operators
  if (cp >= 0xFFF9 && cp <= 0xFFFB) return Kind::Drop;   // interlinear annotation
  return Kind::Keep;
}

}  // namespace

CleanInfo clean_append(std::string_view raw, std::string& out) {
  CleanInfo info;
  // Fast path: printable ASCII only, just trim spaces.
  bool plain = true;
  for (char c : raw) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7E) {
      plain = false;
      break;
    }
  }
  if (plain) {
    std::size_t b = 0;
    std::size_t e = raw.size();
    while (b < e && raw[b] == ' ') ++b;
    while (e > b && raw[e - 1] == ' ') --e;
    out.append(raw.data() + b, e - b);
    return info;
  }

  std::size_t pending_spaces = 0;  // spaces seen since the last kept character
  bool any_kept = false;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    char32_t cp = 0;
    const std::size_t len = text::decode_utf8(raw, pos, cp);
    if (len == 0) {
      if (info.bad_utf8 == CleanInfo::npos) {
        info.bad_utf8 = pos;
        info.bad_byte = static_cast<unsigned char>(raw[pos]);
      }
      ++pos;
      continue;
    }
    switch (classify(cp)) {
      case Kind::Drop:
        break;
      case Kind::Space:
        if (any_kept) ++pending_spaces;
        break;
      case Kind::Keep:
        if (cp == ' ') {
          if (any_kept) ++pending_spaces;
          break;
        }
        out.append(pending_spaces, ' ');
        pending_spaces = 0;
        out.append(raw.data() + pos, len);
        any_kept = true;
        break;
    }
    pos += len;
  }
  return info;
}

int count_line_breaks(std::string_view text, std::size_t end) {
  int n = 0;
  for (std::size_t i = 0; i < end && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++n;
    } else if (text[i] == '\r') {
      if (i + 1 >= text.size() || text[i + 1] != '\n') ++n;
    }
  }
  return n;
}

std::string fold_header(std::string_view heading) {
  std::string out;
  out.reserve(heading.size());
  for (char c : heading) {
    const char lower = text::to_lower(c);
    if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9')) out.push_back(lower);
  }
  return out;
}

}  // namespace p2x::intake::detail
