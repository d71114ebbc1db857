// client/upload: reading the CSV that `check`, `submit` and `submit --dry-run` use, within the
// size the daemon accepts.
//
// A submit carries the CSV inside one JSON request line as base64, which is a third larger than
// the file; the daemon refuses a line longer than its limits.max_request_bytes. The CLI learns
// that limit from the daemon's `ping` answer (else it assumes the configuration's default),
// refuses a larger file before reading or sending it, and says the file's size, the largest CSV
// the limit allows and what to do. Files are read by intake::read_csv_file: regular files only.
// "-" and /dev/stdin (also /dev/fd/0, /proc/self/fd/0) read the CSV from standard input, a
// pipe or a redirected file, once, to its end (a terminal is refused: nothing would end it).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

namespace p2x::client {

// Whether `path` names standard input ("-", /dev/stdin, /dev/fd/0, /proc/self/fd/0).
bool is_standard_input(const std::string& path);
// What messages and the job call the CSV: "standard input" for it, else the path as given.
std::string shown_name(const std::string& path);

// The bytes of standard input to its end, at most `max_bytes` of them. Throws intake::FileError
// when it is a terminal or cannot be read, intake::FileTooLarge beyond `max_bytes` (its `size`
// then counts what was read: at least max_bytes + 1).
std::string read_standard_input(std::uint64_t max_bytes);

// The largest CSV whose request fits in `max_request_bytes` when the rest of the request line
// (everything but the base64 text) takes `request_overhead` bytes.
std::uint64_t csv_limit(std::uint64_t max_request_bytes, std::uint64_t request_overhead);

// The daemon's limits.max_request_bytes from its ping answer; nullopt when it does not say
// (an older daemon or another program on the socket). Throws ipc::Unreachable.
std::optional<std::uint64_t> daemon_request_limit(const std::string& socket, int timeout_s);

// Where a request limit came from, for the message.
enum class LimitSource { Daemon, Default };

// "PATH is 200.0 MB (...), larger than the 50.3 MB CSV pacs2xnatd accepts ...; split ... or
// raise limits.max_request_bytes ..." for a file of `size` bytes.
std::string too_large_message(const std::string& path, std::uint64_t size,
                              std::uint64_t max_request_bytes, std::uint64_t csv_max,
                              LimitSource source);

// `submit`: reads the CSV at `path` for a request whose other parts take `request_overhead`
// bytes, within `max_request_bytes` (from `source`). Returns kOk with `bytes` set, or the exit
// code after writing why to `err`: kRefused when the file is too large, kUsage when the path is
// not a readable regular file.
int read_csv_for_request(const std::string& path, std::uint64_t max_request_bytes,
                         LimitSource source, std::uint64_t request_overhead, std::string& bytes,
                         std::ostream& err);

// `check` (no daemon needed): reads the CSV at `path` within the default limit; only a larger
// file makes it ask the daemon at `socket` whether its limit is higher. Exit codes as above.
int read_csv_for_check(const std::string& path, const std::string& socket,
                       std::uint64_t request_overhead, std::string& bytes, std::ostream& err);

}  // namespace p2x::client
