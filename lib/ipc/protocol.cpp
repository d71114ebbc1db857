#include "ipc/protocol.hpp"

#include <array>

namespace p2x::ipc {

json make_request(std::string_view cmd, json args) {
  return json{{"cmd", std::string(cmd)}, {"args", std::move(args)}};
}

json make_ok(json result) { return json{{"ok", true}, {"result", std::move(result)}}; }

json make_error(std::string_view code, std::string_view message) {
  return json{{"ok", false},
              {"error", {{"code", std::string(code)}, {"message", std::string(message)}}}};
}

void LineBuffer::feed(std::string_view bytes) {
  if (overflowed_) return;
  buf_.append(bytes.data(), bytes.size());
  auto nl = buf_.find('\n', scanned_);
  if (nl == std::string::npos) {
    scanned_ = buf_.size();
    if (buf_.size() > max_line_) {
      overflowed_ = true;
      buf_.clear();
      buf_.shrink_to_fit();
    }
  } else if (nl > max_line_) {
    overflowed_ = true;
    buf_.clear();
  }
}

std::optional<std::string> LineBuffer::next() {
  if (overflowed_) return std::nullopt;
  auto nl = buf_.find('\n');
  if (nl == std::string::npos) {
    scanned_ = buf_.size();
    return std::nullopt;
  }
  if (nl > max_line_) {
    overflowed_ = true;
    buf_.clear();
    return std::nullopt;
  }
  std::string line = buf_.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  buf_.erase(0, nl + 1);
  scanned_ = 0;
  return line;
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                 (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                 static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string base64_decode(std::string_view text) {
  static const auto table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = i;
    return t;
  }();
  if (text.size() % 4 != 0) throw CommandError(code::bad_request, "base64 data has a bad length");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else if (pad > 0 || (v[k] = table[static_cast<unsigned char>(c)]) < 0) {
        throw CommandError(code::bad_request, "base64 data has an invalid character");
      }
    }
    unsigned w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>((w >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((w >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(w & 0xFF));
  }
  return out;
}

}  // namespace p2x::ipc
