// xnat/zip_records: the byte layout of a STORED (uncompressed) zip archive, free of files and
// sockets: local file headers, central directory headers and the end records, ZIP64 where a
// size or offset reaches 4 GiB or the entry count reaches 65535 (APPNOTE 6.3.x). Local headers
// always carry the real CRC-32 and sizes: general-purpose flag bit 3 (data descriptor) is never
// set, since Java's ZipInputStream, which XNAT reads uploads with, refuses STORED entries that
// use one.
#pragma once

#include <cstdint>
#include <string>

namespace p2x::xnat::detail {

struct ZipEntry {
  std::string path;           // file to read the data from
  std::string name;           // name in the archive ('/'-separated, relative)
  std::uint64_t size = 0;     // data bytes (stored: compressed size = size)
  std::uint32_t crc = 0;      // CRC-32 of the data
  std::int64_t mtime_ns = 0;  // the file's mtime when its CRC was computed
  std::uint64_t offset = 0;   // offset of the local header in the archive
};

constexpr std::uint32_t kZip32Max = 0xFFFFFFFFu;   // a size/offset at least this needs ZIP64
constexpr std::uint32_t kZipEntriesMax = 0xFFFFu;  // an entry count at least this needs ZIP64
constexpr std::uint16_t kFlagDataDescriptor = 1u << 3;
constexpr std::uint16_t kFlagUtf8 = 1u << 11;

// Appends one record to out. DOS times are local time, as zip tools read them.
void append_local_header(std::string& out, const ZipEntry& e);
void append_central_header(std::string& out, const ZipEntry& e);
// The ZIP64 end record and locator (when needed) and the classic end of central directory.
void append_end_records(std::string& out, std::uint64_t entries, std::uint64_t cd_offset,
                        std::uint64_t cd_size);

}  // namespace p2x::xnat::detail
