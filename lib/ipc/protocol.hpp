// ipc/protocol: the JSON-lines envelope shared by the daemon and the CLI.
//
// A request is one line of JSON: {"cmd": "status", "args": {...}}.
// A response is one line of JSON: {"ok": true, "result": ...} or
// {"ok": false, "error": {"code": "...", "message": "..."}} where the message says what to do.
// LineBuffer is the socket-free framing (bytes in, complete lines out, bounded size).
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace p2x::ipc {

using json = nlohmann::json;

// Error codes carried in responses.
namespace code {
inline constexpr const char* bad_request = "bad_request";  // malformed JSON, missing fields
inline constexpr const char* too_large = "too_large";      // request over the size limit
inline constexpr const char* unknown_command = "unknown_command";
inline constexpr const char* refused = "refused";  // valid request the daemon declines
inline constexpr const char* not_found = "not_found";
inline constexpr const char* internal = "internal";
inline constexpr const char* busy = "busy";            // too many connections open
inline constexpr const char* timed_out = "timed_out";  // no complete request in time
}  // namespace code

// Thrown by command handlers to answer with an error (code + actionable message).
struct CommandError : std::runtime_error {
  CommandError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

json make_request(std::string_view cmd, json args = json::object());
json make_ok(json result);
json make_error(std::string_view code, std::string_view message);

// Accumulates bytes and hands out complete '\n'-terminated lines (without the '\n').
// Once a line grows past `max_line` bytes the buffer is overflowed() for good: the connection
// is answered with a too_large error and closed, since the rest of the stream cannot be trusted.
// After the overflow, fed bytes are only counted (dropped()) until the oversized line ends
// (overflow_ended()), so the server can read the whole request before it hangs up: a client
// still writing would otherwise see a broken pipe instead of the answer.
class LineBuffer {
 public:
  explicit LineBuffer(std::size_t max_line) : max_line_(max_line) {}
  void feed(std::string_view bytes);
  std::optional<std::string> next();
  bool overflowed() const { return overflowed_; }
  bool overflow_ended() const { return overflow_ended_; }
  std::size_t dropped() const { return dropped_; }
  std::size_t max_line() const { return max_line_; }

 private:
  void overflow(std::size_t line_end);  // line_end: offset of its '\n' in buf_, or npos

  std::size_t max_line_;
  std::string buf_;
  std::size_t scanned_ = 0;  // bytes of buf_ known to hold no '\n'
  bool overflowed_ = false;
  bool overflow_ended_ = false;
  std::size_t dropped_ = 0;
};

// Requests nest objects and arrays at most this deep; deeper ones are refused before parsing
// (a recursive descent over a million brackets would overflow the stack).
inline constexpr std::size_t kMaxNesting = 64;

// Raw bytes (a CSV need not be valid UTF-8) travel inside JSON as base64 (RFC 4648) text.
json bytes_value(std::string_view bytes);
// The bytes carried by args[key] (see bytes_value). Throws CommandError(bad_request) when the
// text is not base64, and json::exception when the argument is missing or not a string.
std::string bytes_argument(const json& args, const std::string& key);

}  // namespace p2x::ipc
