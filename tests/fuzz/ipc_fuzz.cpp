// fuzz_ipc: the control socket's request path without the socket. The input is the byte stream
// one client sends on a connection; its first byte picks the size of the reads (1-256 bytes),
// as the server's reads may split the stream anywhere. As ipc::Server's Session does, the bytes
// go through ipc::LineBuffer, every complete line through Dispatcher::dispatch, every response
// through json::dump, until the buffer overflows.
// The handlers read their arguments as lib/service's do (at/get, value, bytes_argument's base64,
// a CSV through intake::parse_csv, errors as CommandError, json::exception or std::exception).
// Checked besides crashes: dispatch never throws and answers every line with one well-formed
// response; the framing hands out exactly the stream's lines up to the first one over the limit.
#include "expect.hpp"
#include "intake/intake.hpp"
#include "ipc/protocol.hpp"
#include "ipc/server.hpp"

#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using p2x::ipc::json;

// Small enough for the fuzzer to cross; the daemon's is limits.max_request_bytes.
constexpr std::size_t kMaxLine = 8192;

json submit(const json& args) {
  json out;
  out["project"] = args.at("project").get<std::string>();
  out["pacs"] = args.at("pacs").get<std::string>();
  out["csv_name"] = args.value("csv_name", std::string("stdin"));
  const std::string bytes = p2x::ipc::bytes_argument(args, "csv_base64");
  const auto parsed = p2x::intake::parse_csv(bytes);
  if (!parsed.ok()) {
    std::string message = "the CSV has problems:";
    for (const auto& p : parsed.problems) message += "\n  " + p2x::intake::format(p);
    throw p2x::ipc::CommandError(p2x::ipc::code::refused, message);
  }
  out["rows"] = parsed.rows.size();
  out["modality"] = args.value("modality", std::string());
  out["strict"] = args.value("strict", false);
  if (args.contains("series_description")) out["series_description"] = args["series_description"];
  return out;
}

std::int64_t job_id(const json& args) {
  if (!args.contains("job") || !args["job"].is_number_integer()) {
    throw p2x::ipc::CommandError(p2x::ipc::code::bad_request, "\"job\" must be an integer");
  }
  return args["job"].get<std::int64_t>();
}

p2x::ipc::Dispatcher make_dispatcher() {
  p2x::ipc::Dispatcher d;
  d.add("ping", [](const json&, const p2x::ipc::Peer&) { return json{{"pong", true}}; });
  d.add("submit", [](const json& a, const p2x::ipc::Peer&) { return submit(a); });
  d.add("status", [](const json& a, const p2x::ipc::Peer&) {
    return json{{"job", a.contains("job") ? json(job_id(a)) : json()}};
  });
  d.add("cancel", [](const json& a, const p2x::ipc::Peer&) -> json {
    const std::int64_t id = job_id(a);
    if (id != 1) throw p2x::ipc::CommandError(p2x::ipc::code::not_found, "no such job");
    return json{{"cancelled", id}};
  });
  d.add("report", [](const json& a, const p2x::ipc::Peer&) -> json {
    if (a.value("fail", false)) throw std::runtime_error("report failed");  // internal
    return json::array({a.value("job", 0), a.value("format", std::string("csv"))});
  });
  return d;
}

const p2x::ipc::Dispatcher& dispatcher() {
  static const p2x::ipc::Dispatcher d = make_dispatcher();
  return d;
}

void check_response(const json& response, const std::string& line) {
  const std::string where = "request: " + line.substr(0, 200);
  P2X_FUZZ_EXPECT(response.is_object() && response.contains("ok") && response["ok"].is_boolean(),
                  where);
  if (response["ok"].get<bool>()) {
    P2X_FUZZ_EXPECT(response.contains("result"), where);
  } else {
    const json& error = response.at("error");
    P2X_FUZZ_EXPECT(error.at("code").is_string() && error.at("message").is_string() &&
                        !error["message"].get_ref<const std::string&>().empty(),
                    where);
  }
  // As ipc::Server writes it: never throws, invalid UTF-8 replaced, one line.
  const std::string out = response.dump(-1, ' ', false, json::error_handler_t::replace);
  P2X_FUZZ_EXPECT(out.find('\n') == std::string::npos, where);
}

// What a correct framing hands out: the stream split at '\n' (a CR before it dropped), up to
// the first line over kMaxLine.
struct Framing {
  std::vector<std::string> lines;
  bool long_line = false;  // a complete line over kMaxLine follows them: must overflow
  bool long_tail = false;  // the unterminated rest is over kMaxLine: may overflow
};

Framing expected_framing(std::string_view stream) {
  Framing f;
  for (std::size_t nl; (nl = stream.find('\n')) != std::string_view::npos;
       stream.remove_prefix(nl + 1)) {
    if (nl > kMaxLine) {
      f.long_line = true;
      return f;
    }
    std::string line(stream.substr(0, nl));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    f.lines.push_back(std::move(line));
  }
  f.long_tail = stream.size() > kMaxLine;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // the internal-error path logs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Framing expected = expected_framing(stream);

  p2x::ipc::LineBuffer lines(kMaxLine);
  const p2x::ipc::Peer peer;
  std::size_t handed_out = 0;
  for (std::size_t at = 0; at < stream.size() && !lines.overflowed(); at += chunk) {
    lines.feed(stream.substr(at, chunk));
    while (auto line = lines.next()) {
      P2X_FUZZ_EXPECT(handed_out < expected.lines.size() && *line == expected.lines[handed_out],
                      "line " + std::to_string(handed_out) + " framed wrongly");
      ++handed_out;
      check_response(dispatcher().dispatch(*line, peer), *line);
    }
  }
  P2X_FUZZ_EXPECT(handed_out == expected.lines.size(), std::to_string(handed_out) + " of " +
                                                           std::to_string(expected.lines.size()) +
                                                           " lines handed out");
  P2X_FUZZ_EXPECT(
      lines.overflowed() == expected.long_line || (lines.overflowed() && expected.long_tail),
      lines.overflowed() ? "overflow without a long line" : "a long line accepted");
  return 0;
}
