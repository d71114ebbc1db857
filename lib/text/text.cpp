// text: trimming, ASCII case, the DICOM UID and XNAT label rules, base64, UTF-8 decoding,
// message-sized values and spreadsheet-safe CSV fields.
#include "text/text.hpp"

#include <algorithm>

// Beast's base64 codec is the only one among our libraries; Boost 1.81 keeps it in a detail
// namespace (no public API), so it is used here and nowhere else.
#include <boost/beast/core/detail/base64.hpp>

namespace p2x::text {

namespace {

bool is_padding(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == '\0';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::string trim(std::string_view s) {
  std::size_t begin = 0;
  std::size_t end = s.size();
  while (begin < end && is_padding(s[begin])) ++begin;
  while (end > begin && is_padding(s[end - 1])) --end;
  return std::string(s.substr(begin, end - begin));
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = to_lower(c);
  return out;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = to_upper(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  }
  return true;
}

UidFault uid_fault(std::string_view uid) {
  if (uid.empty()) return UidFault::Empty;
  for (char c : uid) {
    if (!is_digit(c) && c != '.') return UidFault::BadCharacter;
  }
  if (uid.size() > kMaxUidLength) return UidFault::TooLong;
  if (uid.front() == '.' || uid.back() == '.' || uid.find("..") != std::string_view::npos) {
    return UidFault::EmptyComponent;
  }
  return UidFault::None;
}

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
}

bool is_valid_label(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabelLength) return false;
  for (char c : label) {
    if (!is_label_char(c)) return false;
  }
  return true;
}

std::string sanitize_label(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (is_label_char(text[pos])) {
      out.push_back(text[pos]);
      ++pos;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = decode_utf8(text, pos, cp);
    out.push_back('_');  // one '_' per character, not per byte
    pos += len == 0 ? 1 : len;
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  namespace b64 = boost::beast::detail::base64;
  std::string out(b64::encoded_size(bytes.size()), '\0');
  out.resize(b64::encode(out.data(), bytes.data(), bytes.size()));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  namespace b64 = boost::beast::detail::base64;
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(b64::decoded_size(text.size()), '\0');
  // Beast stops at the first '=' or character outside the alphabet and says how far it read;
  // what remains must be the padding, else the text is not base64.
  const auto [written, read] = b64::decode(out.data(), text.data(), text.size());
  const std::string_view rest = text.substr(read);
  if (rest.size() > 2 || rest.find_first_not_of('=') != std::string_view::npos) {
    return std::nullopt;
  }
  out.resize(written);
  return out;
}

std::size_t decode_utf8(std::string_view text, std::size_t pos, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  std::size_t len = 0;
  char32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (pos + len > text.size()) return 0;
  for (std::size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(text[pos + i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

std::string abbreviate(std::string_view value, std::size_t max_chars) {
  std::size_t pos = 0;
  std::size_t chars = 0;
  while (pos < value.size() && chars < max_chars) {
    char32_t cp = 0;
    const std::size_t len = decode_utf8(value, pos, cp);
    pos += len == 0 ? 1 : len;
    ++chars;
  }
  if (pos >= value.size()) return std::string(value);
  return std::string(value.substr(0, pos)) + "\xE2\x80\xA6(" + std::to_string(value.size()) +
         " bytes)";
}

char formula_trigger(std::string_view value) {
  if (value.empty()) return '\0';
  switch (value.front()) {
    case '=':
    case '+':
    case '-':
    case '@':
    case '\t':
    case '\r':
      return value.front();
    default:
      return '\0';
  }
}

std::string csv_field(std::string_view value) {
  const bool neutralise = formula_trigger(value) != '\0';
  if (!neutralise && value.find_first_of(",;\"\t\r\n") == std::string_view::npos) {
    return std::string(value);
  }
  std::string out;
  out.reserve(value.size() + 4);
  out.push_back('"');
  if (neutralise) out.push_back('\'');
  for (char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::size_t json_nesting_depth(std::string_view json_text, std::size_t limit,
                               std::size_t* past_limit) {
  if (past_limit != nullptr) *past_limit = std::string_view::npos;
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < json_text.size(); ++i) {
    const char c = json_text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) {
        if (past_limit != nullptr) *past_limit = i;
        return deepest;
      }
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace p2x::text
