// intake/csv_file: reads a study-list CSV from disk with a size cap, regular files only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "intake/intake.hpp"

namespace p2x::intake {

namespace {

// What a file that is not a regular file is, for "PATH is <kind>, not a CSV file".
std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device (like /dev/zero or a terminal)";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void fail_errno(const std::string& path, int error) {
  throw FileError("cannot read " + path + ": " + std::strerror(error));
}

void require_regular(const std::string& path, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) {
    throw FileError(path + " is " + kind_of(st.st_mode) + ", not a CSV file");
  }
}

// Closes the descriptor when the read ends, however it ends.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

FileTooLarge::FileTooLarge(const std::string& path, std::uint64_t size_bytes,
                           std::uint64_t limit_bytes)
    : FileError(path + " is " + std::to_string(size_bytes) + " bytes; at most " +
                std::to_string(limit_bytes) + " bytes are read"),
      size(size_bytes),
      limit(limit_bytes) {}

std::string read_csv_file(const std::string& path, std::uint64_t max_bytes) {
  // stat() first: opening a FIFO would wait for a writer and a socket cannot be opened at all.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail_errno(path, errno);
  require_regular(path, st);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) fail_errno(path, errno);
  FdCloser closer{fd};
  if (::fstat(fd, &st) != 0) fail_errno(path, errno);
  require_regular(path, st);  // replaced between stat() and open()
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) throw FileTooLarge(path, size, max_bytes);

  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(path, errno);
    }
    if (n == 0) break;
    if (bytes.size() + static_cast<std::size_t>(n) > max_bytes) {  // grew while being read
      throw FileTooLarge(path, bytes.size() + static_cast<std::size_t>(n), max_bytes);
    }
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  return bytes;
}

}  // namespace p2x::intake
