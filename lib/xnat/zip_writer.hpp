// xnat/zip_writer: a study directory as a STORED zip produced on the fly, for streaming into an
// HTTP request body without a temp file. plan_zip() lists the files and computes every CRC-32
// (zlib) first, so the exact archive size and every local header are known before the request
// headers go out; ZipStream then produces the archive's bytes in order, reading each file again.
// Memory use does not depend on the study size (one ZipEntry per file, no data buffered here).
//
// A file that changes between the CRC pass and the send is detected, never sent silently with a
// wrong CRC: ZipStream computes the CRC of the bytes as it hands them out and checks the size
// and mtime after each file, and throws ZipSourceChanged at the first difference, before the
// archive is complete (the caller then aborts the request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "xnat/zip_records.hpp"

namespace p2x::xnat::detail {

struct ZipPlan {
  std::vector<ZipEntry> entries;  // sorted by name, offsets filled in
  std::uint64_t bytes_in = 0;     // sum of the files' sizes
  std::uint64_t cd_offset = 0;    // central directory offset
  std::uint64_t cd_size = 0;
  std::uint64_t zip_size = 0;     // the whole archive
};

// Every regular file under dir (recursively, sorted, names relative to dir), with its CRC-32
// computed by crc_threads threads. Throws std::runtime_error when dir is missing or holds no
// files, or on any read error.
ZipPlan plan_zip(const std::string& dir, unsigned crc_threads = 2);

// A study file differs from what plan_zip() saw (size, mtime or the CRC of the bytes read).
struct ZipSourceChanged : std::runtime_error {
  using std::runtime_error::runtime_error;
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
  void finish_entry();
  void close_fd() noexcept;

  const ZipPlan& plan_;
  Phase phase_ = Phase::Local;
  std::size_t index_ = 0;     // entry being produced (Local/Data/Central)
  std::string pending_;       // header bytes not handed out yet
  std::size_t pending_pos_ = 0;
  int fd_ = -1;
  std::uint64_t left_ = 0;    // data bytes of the current entry still to read
  std::uint32_t crc_ = 0;     // CRC of the current entry's bytes read so far
};

}  // namespace p2x::xnat::detail
