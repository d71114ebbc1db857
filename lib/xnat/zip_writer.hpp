// xnat/zip_writer: packs a study directory into a zip file with libarchive, one file at a time
// through a fixed buffer (memory use does not depend on the study size). Entries are stored
// (not deflated): DICOM compresses poorly and storing is much faster.
#pragma once

#include <cstdint>
#include <string>

namespace p2x::xnat::detail {

// A temp file created next to a directory (".<name>.upload-XXXXXX.zip" in its parent) and
// removed by the destructor.
class TempZip {
 public:
  explicit TempZip(const std::string& dir);  // throws std::runtime_error
  ~TempZip();
  TempZip(const TempZip&) = delete;
  TempZip& operator=(const TempZip&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ZipStats {
  std::int64_t files = 0;     // entries written
  std::int64_t bytes_in = 0;  // sum of the files' sizes
  std::int64_t zip_size = 0;  // size of the zip
};

// Every regular file under dir (recursively, sorted, names relative to dir). Throws
// std::runtime_error when dir is missing or holds no files, or on any read/write error.
ZipStats write_zip(const std::string& dir, const std::string& zip_path);

}  // namespace p2x::xnat::detail
