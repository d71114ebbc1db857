// client/upload: the CSV a command reads, within the daemon's request limit.
#include "client/upload.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>

#include "client/cli.hpp"
#include "client/format.hpp"
#include "config/config.hpp"
#include "intake/intake.hpp"
#include "ipc/client.hpp"

namespace p2x::client {

namespace {

// "50.3 MB (50331456 bytes)"
std::string size_text(std::uint64_t bytes) {
  return format_bytes(static_cast<double>(bytes)) + " (" + std::to_string(bytes) + " bytes)";
}

std::uint64_t default_request_limit() {
  return static_cast<std::uint64_t>(config::Limits{}.max_request_bytes);
}

// The CSV at `path` (a file, or standard input) within max_bytes; throws intake::FileError.
std::string read_csv(const std::string& path, std::uint64_t max_bytes) {
  if (is_standard_input(path)) return read_standard_input(max_bytes);
  return intake::read_csv_file(path, max_bytes);
}

}  // namespace

bool is_standard_input(const std::string& path) {
  return path == "-" || path == "/dev/stdin" || path == "/dev/fd/0" || path == "/proc/self/fd/0";
}

std::string shown_name(const std::string& path) {
  return is_standard_input(path) ? "standard input" : path;
}

std::string read_standard_input(std::uint64_t max_bytes) {
  const std::string name = "standard input";
  if (::isatty(STDIN_FILENO) == 1) {
    throw intake::FileError(name +
                            " is a terminal: give the CSV file's path, or pipe or "
                            "redirect it in (pacs2xnat check - < studies.csv)");
  }
  struct stat st {};
  if (::fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    throw intake::FileTooLarge(name, static_cast<std::uint64_t>(st.st_size), max_bytes);
  }
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw intake::FileError("cannot read " + name + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<std::size_t>(n));
    if (bytes.size() > max_bytes) throw intake::FileTooLarge(name, bytes.size(), max_bytes);
  }
  return bytes;
}

std::uint64_t csv_limit(std::uint64_t max_request_bytes, std::uint64_t request_overhead) {
  if (max_request_bytes <= request_overhead) return 0;
  // base64 writes every 3 bytes (the last group padded) as 4 characters.
  return (max_request_bytes - request_overhead) / 4 * 3;
}

std::optional<std::uint64_t> daemon_request_limit(const std::string& socket, int timeout_s) {
  ipc::json answer;
  try {
    answer = ipc::call(socket, "ping", ipc::json::object(), timeout_s);
  } catch (const ipc::Unreachable&) {
    throw;
  } catch (const std::exception&) {
    return std::nullopt;  // a garbled answer: not a daemon that says its limit
  }
  const ipc::json result = answer.value("result", ipc::json::object());
  const auto it = result.find("max_request_bytes");
  if (!answer.value("ok", false) || it == result.end() || !it->is_number_integer() ||
      it->get<std::int64_t>() <= 0) {
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(it->get<std::int64_t>());
}

std::string too_large_message(const std::string& path, std::uint64_t size,
                              std::uint64_t max_request_bytes, std::uint64_t csv_max,
                              LimitSource source) {
  const std::string whose = source == LimitSource::Daemon ? "pacs2xnatd's limits.max_request_bytes"
                                                          : "the default limits.max_request_bytes";
  return path + " is " + size_text(size) + ", larger than the " + size_text(csv_max) +
         " CSV that pacs2xnatd accepts: " + whose + " is " + std::to_string(max_request_bytes) +
         " bytes and a CSV travels in the request as base64, a third larger. Split the CSV "
         "into files of at most " +
         format_bytes(static_cast<double>(csv_max)) +
         " (each with the header line), or raise limits.max_request_bytes in the daemon's "
         "configuration and restart pacs2xnatd";
}

int read_csv_for_request(const std::string& path, std::uint64_t max_request_bytes,
                         LimitSource source, std::uint64_t request_overhead, std::string& bytes,
                         std::ostream& err) {
  const std::uint64_t csv_max = csv_limit(max_request_bytes, request_overhead);
  try {
    bytes = read_csv(path, csv_max);
  } catch (const intake::FileTooLarge& e) {
    std::string message =
        too_large_message(shown_name(path), e.size, max_request_bytes, csv_max, source);
    if (is_standard_input(path))  // read until past the limit, not to its end
      message.replace(0, std::string("standard input is").size(), "standard input holds at least");
    err << "pacs2xnat: " << message << "\n";
    return kRefused;
  } catch (const intake::FileError& e) {
    err << "pacs2xnat: " << e.what() << "\n";
    return kUsage;
  }
  return kOk;
}

int read_csv_for_check(const std::string& path, const std::string& socket,
                       std::uint64_t request_overhead, std::string& bytes, std::ostream& err) {
  std::uint64_t limit = default_request_limit();
  LimitSource source = LimitSource::Default;
  if (is_standard_input(path)) {
    // Read once only: with the daemon's limit when one answers, else the default.
    try {
      if (auto daemon = daemon_request_limit(socket, 5)) {
        limit = *daemon;
        source = LimitSource::Daemon;
      }
    } catch (const ipc::Unreachable&) {
    }
    return read_csv_for_request(path, limit, source, request_overhead, bytes, err);
  }
  try {
    bytes = intake::read_csv_file(path, csv_limit(limit, request_overhead));
    return kOk;
  } catch (const intake::FileTooLarge&) {
    // Larger than the default allows: the daemon, if one answers, may accept more.
    try {
      if (auto daemon = daemon_request_limit(socket, 5)) {
        limit = *daemon;
        source = LimitSource::Daemon;
      }
    } catch (const ipc::Unreachable&) {
    }
  } catch (const intake::FileError& e) {
    err << "pacs2xnat: " << e.what() << "\n";
    return kUsage;
  }
  return read_csv_for_request(path, limit, source, request_overhead, bytes, err);
}

}  // namespace p2x::client
