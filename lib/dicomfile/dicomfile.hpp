// dicomfile: reading a DICOM Part 10 file while computing the CRC-32 of every byte of it.
//
// What the pipeline validates must be what it sends. Validation parses every file of a study
// once; this module lets that one pass also yield the file's CRC-32 (zlib) and size, so the
// upload can prove byte for byte that it sends the bytes validation accepted (the zip's local
// headers carry that CRC; the C-STORE push re-reads each file through the same reader and
// compares). Bytes DCMTK skips (values larger than max_read_length, such as pixel data, are
// left on disk) are still read and counted, and bytes DCMTK reads twice (its putback) are
// counted once, so the CRC always covers exactly the file's bytes in order.
#pragma once

#include <cstdint>
#include <string>

class DcmFileFormat;

namespace p2x::dicomfile {

struct CrcRead {
  bool ok = false;         // parsed as DICOM (the dataset is in the DcmFileFormat)
  std::string error;       // why not, when !ok
  std::uint64_t size = 0;  // bytes in the file
  std::uint32_t crc = 0;   // CRC-32 of those bytes (valid whenever the file could be read)
  bool crc_known = false;  // false when the file could not be read to its end
};

// Loads path into `file` (values longer than max_read_length stay on disk, read later on
// access) and computes the CRC-32 and size of the whole file in the same pass. A file that
// changes size while it is read is reported as not ok ("changed while it was read").
CrcRead load_with_crc(const std::string& path, DcmFileFormat& file,
                      std::uint32_t max_read_length = 4096);

// CRC-32 of a buffer, continuing `crc` (0 to start), for callers that check bytes they stream.
std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t n);

}  // namespace p2x::dicomfile
