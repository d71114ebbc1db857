// dicomfile: a DCMTK input stream over a file that computes the CRC-32 of every byte once, in
// file order, whether DCMTK reads it, skips it or reads it again after a putback.
#include "dicomfile/dicomfile.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcistrma.h>
#include <dcmtk/dcmdata/dcistrmf.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace p2x::dicomfile {

std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t n) {
  return static_cast<std::uint32_t>(
      crc32_z(crc, static_cast<const Bytef*>(data), static_cast<z_size_t>(n)));
}

namespace {

// The producer at the start of DCMTK's stream chain: pread() at pos_, CRC over [0, crc_end_).
class CrcProducer : public DcmProducer {
 public:
  explicit CrcProducer(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
      fail(std::string("cannot open: ") + std::strerror(errno));
      return;
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~CrcProducer() override {
    if (fd_ >= 0) ::close(fd_);
  }
  CrcProducer(const CrcProducer&) = delete;
  CrcProducer& operator=(const CrcProducer&) = delete;

  OFBool good() const override { return status_.good(); }
  OFCondition status() const override { return status_; }
  OFBool eos() override { return pos_ >= size_; }
  offile_off_t avail() override { return good() ? static_cast<offile_off_t>(size_ - pos_) : 0; }

  offile_off_t read(void* buf, offile_off_t buflen) override {
    if (!good() || buflen <= 0) return 0;
    const std::uint64_t want =
        std::min<std::uint64_t>(static_cast<std::uint64_t>(buflen), size_ - pos_);
    std::uint64_t got = 0;
    char* out = static_cast<char*>(buf);
    while (got < want) {
      const ssize_t n = ::pread(fd_, out + got, want - got, static_cast<off_t>(pos_ + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fail(n < 0 ? std::string("cannot read: ") + std::strerror(errno)
                   : std::string("changed while it was read (shorter than its size)"));
        break;
      }
      got += static_cast<std::uint64_t>(n);
    }
    count(out, pos_, got);
    pos_ += got;
    return static_cast<offile_off_t>(got);
  }

  // DCMTK skips values it leaves on disk: read them anyway, for the CRC.
  offile_off_t skip(offile_off_t skiplen) override {
    if (!good() || skiplen <= 0) return 0;
    const std::uint64_t n =
        std::min<std::uint64_t>(static_cast<std::uint64_t>(skiplen), size_ - pos_);
    const std::uint64_t target = pos_ + n;
    if (target > crc_end_) {
      const std::uint64_t keep = pos_;
      pos_ = std::max(pos_, crc_end_);
      read_through(target);
      if (!good()) return 0;
      pos_ = keep;
    }
    pos_ = target;
    return static_cast<offile_off_t>(n);
  }

  void putback(offile_off_t num) override {
    if (num < 0 || static_cast<std::uint64_t>(num) > pos_) {
      fail("putback before the start of the file");
      return;
    }
    pos_ -= static_cast<std::uint64_t>(num);
  }

  // After parsing: reads whatever DCMTK left unread, then checks the size did not change.
  CrcRead finish() {
    CrcRead r;
    r.size = size_;
    if (good()) {
      pos_ = std::max(pos_, crc_end_);
      read_through(size_);
    }
    struct stat st {};
    if (good() && (::fstat(fd_, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != size_))
      fail("changed while it was read (its size changed)");
    r.crc_known = good() && crc_end_ == size_;
    r.crc = crc_;
    if (!good()) r.error = error_;
    return r;
  }

 private:
  void read_through(std::uint64_t end) {
    std::vector<char> scratch(std::min<std::uint64_t>(end - pos_, 256 << 10));
    while (good() && pos_ < end) {
      const auto n =
          read(scratch.data(),
               static_cast<offile_off_t>(std::min<std::uint64_t>(scratch.size(), end - pos_)));
      if (n <= 0) break;
    }
  }

  // Bytes [at, at+n) were read into data: CRC the part not counted yet (never twice).
  void count(const char* data, std::uint64_t at, std::uint64_t n) {
    if (at + n <= crc_end_) return;
    if (at > crc_end_) {  // cannot happen: reads start at or before crc_end_
      fail("internal error: a gap in the CRC");
      return;
    }
    const std::uint64_t skip = crc_end_ - at;
    crc_ = crc32_update(crc_, data + skip, n - skip);
    crc_end_ = at + n;
  }

  void fail(const std::string& why) {
    if (status_.good()) error_ = why;
    status_ = EC_InvalidStream;
  }

  int fd_ = -1;
  std::uint64_t size_ = 0, pos_ = 0, crc_end_ = 0;
  std::uint32_t crc_ = 0;
  OFCondition status_ = EC_Normal;
  std::string error_;
};

class CrcInputStream : public DcmInputStream {
 public:
  explicit CrcInputStream(const std::string& path)
      : DcmInputStream(&producer_), producer_(path), path_(path) {}
  // Values left on disk are read later straight from the file.
  DcmInputStreamFactory* newFactory() const override {
    return new DcmInputFileStreamFactory(OFFilename(path_.c_str()), tell());
  }
  CrcRead finish() { return producer_.finish(); }

 private:
  CrcProducer producer_;
  std::string path_;
};

}  // namespace

CrcRead load_with_crc(const std::string& path, DcmFileFormat& file, std::uint32_t max_read_length) {
  CrcInputStream in(path);
  OFCondition cond = in.status();
  if (cond.good()) cond = file.clear();
  if (cond.good()) {
    file.transferInit();
    cond = file.read(in, EXS_Unknown, EGL_noChange, max_read_length);
    file.transferEnd();
  }
  CrcRead r = in.finish();
  if (r.error.empty() && cond.bad()) r.error = cond.text();
  r.ok = r.error.empty();
  return r;
}

}  // namespace p2x::dicomfile
