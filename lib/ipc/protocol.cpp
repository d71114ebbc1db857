#include "ipc/protocol.hpp"

#include <algorithm>
#include <utility>

#include "text/text.hpp"

namespace p2x::ipc {

json make_request(std::string_view cmd, json args) {
  return json{{"cmd", std::string(cmd)}, {"args", std::move(args)}};
}

json make_ok(json result) {
  return json{{"ok", true}, {"result", std::move(result)}};
}

json make_error(std::string_view code, std::string_view message) {
  return json{{"ok", false},
              {"error", {{"code", std::string(code)}, {"message", std::string(message)}}}};
}

void LineBuffer::overflow(std::size_t line_end) {
  overflowed_ = true;
  overflow_ended_ = line_end != std::string::npos;
  dropped_ = overflow_ended_ ? line_end : buf_.size();
  buf_.clear();
  buf_.shrink_to_fit();
}

void LineBuffer::feed(std::string_view bytes) {
  if (overflowed_) {
    if (overflow_ended_) return;
    const auto nl = bytes.find('\n');
    overflow_ended_ = nl != std::string_view::npos;
    dropped_ += overflow_ended_ ? nl : bytes.size();
    return;
  }
  buf_.append(bytes.data(), bytes.size());
  auto nl = buf_.find('\n', scanned_);
  if (nl == std::string::npos) {
    scanned_ = buf_.size();
    if (buf_.size() > max_line_) overflow(std::string::npos);
  } else if (nl > max_line_) {
    overflow(nl);
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
    overflow(nl);
    return std::nullopt;
  }
  std::string line = buf_.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  buf_.erase(0, nl + 1);
  scanned_ = 0;
  return line;
}

json bytes_value(std::string_view bytes) {
  return text::base64_encode(bytes);
}

std::string bytes_argument(const json& args, const std::string& key) {
  auto bytes = text::base64_decode(args.at(key).get_ref<const std::string&>());
  if (!bytes) throw CommandError(code::bad_request, "\"" + key + "\" is not base64 text");
  return std::move(*bytes);
}

}  // namespace p2x::ipc
