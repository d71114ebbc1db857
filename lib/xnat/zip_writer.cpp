// xnat/zip_writer: study directory -> STORED zip bytes on the fly (see zip_writer.hpp).
#include "xnat/zip_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <thread>

namespace fs = std::filesystem;

namespace p2x::xnat::detail {
namespace {

constexpr std::size_t kCrcBuffer = 256 << 10;
constexpr std::size_t kCentralBatch = 64 << 10;  // central headers produced at a time

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::uint32_t crc_update(std::uint32_t crc, const char* data, std::size_t n) {
  return static_cast<std::uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(data), static_cast<z_size_t>(n)));
}

std::string errno_text() {
  return std::strerror(errno);
}

std::vector<fs::path> list_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("study directory " + dir + " does not exist or is not a directory");
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code sec;
    if (it->is_regular_file(sec)) files.push_back(it->path());
  }
  if (ec) throw std::runtime_error("cannot list study directory " + dir + ": " + ec.message());
  if (files.empty()) throw std::runtime_error("study directory " + dir + " holds no files");
  std::sort(files.begin(), files.end());
  return files;
}

// Size, mtime and CRC-32 of one file, read once; a file changing meanwhile is an error.
void crc_file(ZipEntry& e, std::vector<char>& buf) {
  Fd in;
  in.fd = ::open(e.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in.fd < 0) throw std::runtime_error("cannot open " + e.path + ": " + errno_text());
  struct stat before {
  }, after{};
  if (::fstat(in.fd, &before) != 0)
    throw std::runtime_error("cannot stat " + e.path + ": " + errno_text());
  std::uint32_t crc = 0;
  std::uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(in.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot read " + e.path + ": " + errno_text());
    if (n == 0) break;
    crc = crc_update(crc, buf.data(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
  }
  if (::fstat(in.fd, &after) != 0)
    throw std::runtime_error("cannot stat " + e.path + ": " + errno_text());
  if (total != static_cast<std::uint64_t>(before.st_size) || after.st_size != before.st_size ||
      mtime_ns(after) != mtime_ns(before))
    throw ZipSourceChanged(e.path, "study file " + e.path + " changed while its CRC was computed");
  e.size = total;
  e.mtime_ns = mtime_ns(before);
  e.crc = crc;
}

// CRCs of all entries, entry i on thread i % threads; the first error is rethrown.
void crc_all(std::vector<ZipEntry>& entries, unsigned threads) {
  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(entries.size())));
  std::vector<std::exception_ptr> errors(threads);
  auto work = [&entries, &errors, threads](unsigned t) noexcept {
    try {
      std::vector<char> buf(kCrcBuffer);
      for (std::size_t i = t; i < entries.size(); i += threads) crc_file(entries[i], buf);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Offsets, the central directory's place and size, the archive's size.
void lay_out(ZipPlan& plan) {
  std::string scratch;
  std::uint64_t offset = 0;
  for (auto& e : plan.entries) {
    e.offset = offset;
    scratch.clear();
    append_local_header(scratch, e);
    offset += scratch.size() + e.size;
    plan.bytes_in += e.size;
  }
  plan.cd_offset = offset;
  for (const auto& e : plan.entries) {
    scratch.clear();
    append_central_header(scratch, e);
    plan.cd_size += scratch.size();
  }
  scratch.clear();
  append_end_records(scratch, plan.entries.size(), plan.cd_offset, plan.cd_size);
  plan.zip_size = plan.cd_offset + plan.cd_size + scratch.size();
}

}  // namespace

ZipPlan plan_zip(const std::string& dir, unsigned crc_threads) {
  ZipPlan plan;
  for (const auto& f : list_files(dir)) {
    ZipEntry e;
    e.path = f.string();
    e.name = f.lexically_relative(dir).generic_string();
    plan.entries.push_back(std::move(e));
  }
  crc_all(plan.entries, crc_threads);
  lay_out(plan);
  return plan;
}

ZipPlan plan_zip_known(std::vector<ZipEntry> entries) {
  if (entries.empty()) throw std::runtime_error("no study files to upload");
  ZipPlan plan;
  for (auto& e : entries) {
    struct stat st {};
    if (::stat(e.path.c_str(), &st) != 0)
      throw ZipSourceChanged(e.path, "study file " + e.path + " is gone since it was validated (" +
                                         errno_text() + ")");
    if (static_cast<std::uint64_t>(st.st_size) != e.size)
      throw ZipSourceChanged(e.path, "study file " + e.path + " has " + std::to_string(st.st_size) +
                                         " bytes, not the " + std::to_string(e.size) +
                                         " validated");
    e.mtime_ns = mtime_ns(st);  // only for the entry's time stamp
  }
  std::sort(entries.begin(), entries.end(),
            [](const ZipEntry& a, const ZipEntry& b) { return a.name < b.name; });
  plan.entries = std::move(entries);
  lay_out(plan);
  return plan;
}

ZipStream::ZipStream(const ZipPlan& plan) : plan_(plan) {}

ZipStream::~ZipStream() {
  close_fd();
}

void ZipStream::close_fd() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void ZipStream::restart() {
  close_fd();
  phase_ = Phase::Local;
  index_ = 0;
  pending_.clear();
  pending_pos_ = 0;
  left_ = 0;
  crc_ = 0;
}

std::size_t ZipStream::read(char* buf, std::size_t cap) {
  std::size_t n = 0;
  while (n < cap) {
    if (pending_pos_ < pending_.size()) {
      const std::size_t k = std::min(cap - n, pending_.size() - pending_pos_);
      std::memcpy(buf + n, pending_.data() + pending_pos_, k);
      pending_pos_ += k;
      n += k;
    } else if (phase_ == Phase::Data) {
      n += read_data(buf + n, cap - n);
    } else if (!fill_pending()) {
      break;
    }
  }
  return n;
}

// The next header bytes into pending_; false when the archive is complete.
bool ZipStream::fill_pending() {
  pending_.clear();
  pending_pos_ = 0;
  const auto& entries = plan_.entries;
  if (phase_ == Phase::Local && index_ == entries.size()) {
    phase_ = Phase::Central;
    index_ = 0;
  }
  switch (phase_) {
    case Phase::Local:
      append_local_header(pending_, entries[index_]);
      open_entry();
      phase_ = Phase::Data;
      return true;
    case Phase::Central:
      if (index_ == entries.size()) {
        append_end_records(pending_, entries.size(), plan_.cd_offset, plan_.cd_size);
        phase_ = Phase::End;
        return true;
      }
      while (index_ < entries.size() && pending_.size() < kCentralBatch)
        append_central_header(pending_, entries[index_++]);
      return true;
    case Phase::End:
      phase_ = Phase::Done;
      return false;
    default:
      return false;
  }
}

void ZipStream::open_entry() {
  const ZipEntry& e = plan_.entries[index_];
  close_fd();
  fd_ = ::open(e.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOENT)
    throw ZipSourceChanged(e.path, "study file " + e.path + " disappeared before it was sent");
  if (fd_ < 0) throw std::runtime_error("cannot open " + e.path + ": " + errno_text());
  left_ = e.size;
  crc_ = 0;
  if (left_ == 0) verify_entry();
}

// Hands out the current entry's bytes; the read that reaches its last byte first proves the
// whole file matches its entry (verify_entry), so a mismatching file never completes.
std::size_t ZipStream::read_data(char* buf, std::size_t cap) {
  if (left_ == 0) {
    close_fd();
    phase_ = Phase::Local;
    ++index_;
    return 0;
  }
  const ZipEntry& e = plan_.entries[index_];
  ssize_t n = ::read(fd_, buf, static_cast<std::size_t>(std::min<std::uint64_t>(cap, left_)));
  if (n < 0 && errno == EINTR) return 0;
  if (n < 0) throw std::runtime_error("cannot read " + e.path + ": " + errno_text());
  if (n == 0)
    throw ZipSourceChanged(e.path, "study file " + e.path + " is shorter than the " +
                                       std::to_string(e.size) +
                                       " bytes it had when it was checked");
  crc_ = crc_update(crc_, buf, static_cast<std::size_t>(n));
  left_ -= static_cast<std::uint64_t>(n);
  if (left_ == 0) verify_entry();
  return static_cast<std::size_t>(n);
}

// All of an entry's bytes were read (not yet handed out): they must be the bytes it describes,
// and the file must not go on beyond them.
void ZipStream::verify_entry() {
  const ZipEntry& e = plan_.entries[index_];
  char extra = 0;
  ssize_t more = 0;
  do {
    more = ::read(fd_, &extra, 1);
  } while (more < 0 && errno == EINTR);
  if (more < 0) throw std::runtime_error("cannot read " + e.path + ": " + errno_text());
  if (more > 0)
    throw ZipSourceChanged(e.path, "study file " + e.path + " is longer than the " +
                                       std::to_string(e.size) +
                                       " bytes it had when it was checked");
  if (crc_ != e.crc)
    throw ZipSourceChanged(
        e.path, "study file " + e.path +
                    " changed since it was checked (the bytes read have another CRC-32)");
}

}  // namespace p2x::xnat::detail
