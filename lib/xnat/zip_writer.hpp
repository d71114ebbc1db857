// xnat/zip_writer: study files as a STORED zip produced on the fly, for streaming into an HTTP
// request body without a temp file. Every entry's size and CRC-32 is known before the request
// headers go out, so the exact archive size and every local header are too: plan_zip_known()
// takes them from validation (which read every byte already), plan_zip() computes them for a
// directory (tools and tests). ZipStream then produces the archive's bytes in order, reading
// each file again. Memory use does not depend on the study size (one ZipEntry per file).
//
// What is sent is what the plan says, byte for byte: ZipStream computes the CRC of each file's
// bytes as it reads them and withholds the file's last byte until the whole file's size and
// CRC matched its entry; at the first difference it throws ZipSourceChanged, so the entry is
// never complete on the wire and the archive never ends (the caller aborts the request). The
// local header carries the expected CRC too, so XNAT's own zip reader (Java's ZipInputStream
// checks each STORED entry's CRC) would refuse such an entry as well.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "xnat/zip_records.hpp"

namespace p2x::xnat::detail {

struct ZipPlan {
  std::vector<ZipEntry> entries;  // sorted by name, offsets filled in
  std::uint64_t bytes_in = 0;     // sum of the files' sizes
  std::uint64_t cd_offset = 0;    // central directory offset
  std::uint64_t cd_size = 0;
  std::uint64_t zip_size = 0;  // the whole archive
};

// Every regular file under dir (recursively, sorted, names relative to dir), with its CRC-32
// computed by crc_threads threads. Throws std::runtime_error when dir is missing or holds no
// files, or on any read error.
ZipPlan plan_zip(const std::string& dir, unsigned crc_threads = 2);

// A plan for entries whose path, name, size and crc are set (mtime_ns and offset are filled
// in here). Throws std::runtime_error when there are none, ZipSourceChanged when a file is
// missing or its size differs already.
ZipPlan plan_zip_known(std::vector<ZipEntry> entries);

// A study file differs from its entry (size, or the CRC of the bytes read).
struct ZipSourceChanged : std::runtime_error {
  ZipSourceChanged(std::string file, const std::string& message)
      : std::runtime_error(message), path(std::move(file)) {}
  std::string path;  // the file that differs
};

// The archive's bytes for a plan, in order. Not thread-safe; the plan must outlive it.
class ZipStream {
 public:
  explicit ZipStream(const ZipPlan& plan);
  explicit ZipStream(ZipPlan&&) = delete;  // it keeps a reference: no temporaries
  ~ZipStream();
  ZipStream(const ZipStream&) = delete;
  ZipStream& operator=(const ZipStream&) = delete;

  std::uint64_t size() const { return plan_.zip_size; }
  // Back to the first byte (for a request sent again, e.g. after a re-login).
  void restart();
  // Fills buf with up to cap bytes (fewer only at the end); 0 once everything was produced.
  // Throws ZipSourceChanged, or std::runtime_error when a file cannot be read.
  std::size_t read(char* buf, std::size_t cap);

 private:
  enum class Phase { Local, Data, Central, End, Done };
  bool fill_pending();
  std::size_t read_data(char* buf, std::size_t cap);
  void open_entry();
  void verify_entry();
  void close_fd() noexcept;

  const ZipPlan& plan_;
  Phase phase_ = Phase::Local;
  std::size_t index_ = 0;  // entry being produced (Local/Data/Central)
  std::string pending_;    // header bytes not handed out yet
  std::size_t pending_pos_ = 0;
  int fd_ = -1;
  std::uint64_t left_ = 0;  // data bytes of the current entry still to read
  std::uint32_t crc_ = 0;   // CRC of the current entry's bytes read so far
};

}  // namespace p2x::xnat::detail
