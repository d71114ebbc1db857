// xnat/zip_records: STORED zip record encoding (see zip_records.hpp). Little-endian throughout.
#include "xnat/zip_records.hpp"

#include <algorithm>
#include <ctime>

namespace p2x::xnat::detail {
namespace {

constexpr std::uint16_t kVersionStored = 20;  // 2.0: the baseline every reader knows
constexpr std::uint16_t kVersionZip64 = 45;   // 4.5: ZIP64 extensions
constexpr std::uint16_t kMadeByUnix = 3u << 8;
constexpr std::uint16_t kZip64ExtraId = 0x0001;

void put16(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
}
void put32(std::string& out, std::uint32_t v) {
  put16(out, v & 0xFFFF);
  put16(out, v >> 16);
}
void put64(std::string& out, std::uint64_t v) {
  put32(out, static_cast<std::uint32_t>(v & 0xFFFFFFFFu));
  put32(out, static_cast<std::uint32_t>(v >> 32));
}
std::uint32_t clamp32(std::uint64_t v) {
  return v >= kZip32Max ? kZip32Max : static_cast<std::uint32_t>(v);
}

bool needs_utf8_flag(const std::string& name) {
  for (unsigned char c : name)
    if (c >= 0x80) return true;
  return false;
}

// DOS date (high 16 bits) and time (low 16 bits); 1980-01-01 for anything earlier.
std::uint32_t dos_date_time(std::int64_t mtime_ns) {
  std::time_t t = static_cast<std::time_t>(mtime_ns / 1000000000);
  std::tm tm{};
  if (!localtime_r(&t, &tm) || tm.tm_year < 80) return (0u << 9 | 1u << 5 | 1u) << 16;
  const auto year = static_cast<std::uint32_t>(std::min(tm.tm_year - 80, 127));
  const std::uint32_t date = year << 9 | static_cast<std::uint32_t>(tm.tm_mon + 1) << 5 |
                             static_cast<std::uint32_t>(tm.tm_mday);
  const std::uint32_t time = static_cast<std::uint32_t>(tm.tm_hour) << 11 |
                             static_cast<std::uint32_t>(tm.tm_min) << 5 |
                             static_cast<std::uint32_t>(tm.tm_sec / 2);
  return date << 16 | time;
}

// Fields shared by local and central headers, from "version needed" to the name length.
void put_common(std::string& out, const ZipEntry& e, bool zip64, std::uint32_t size_field) {
  put16(out, zip64 ? kVersionZip64 : kVersionStored);
  put16(out, needs_utf8_flag(e.name) ? kFlagUtf8 : 0);  // bit 3 (data descriptor) never set
  put16(out, 0);                                        // method: stored
  const std::uint32_t dt = dos_date_time(e.mtime_ns);
  put16(out, dt & 0xFFFF);
  put16(out, dt >> 16);
  put32(out, e.crc);
  put32(out, size_field);  // compressed size
  put32(out, size_field);  // uncompressed size
  put16(out, static_cast<std::uint32_t>(e.name.size()));
}

}  // namespace

void append_local_header(std::string& out, const ZipEntry& e) {
  const bool zip64 = e.size >= kZip32Max;
  put32(out, 0x04034b50);
  put_common(out, e, zip64, clamp32(e.size));
  put16(out, zip64 ? 20 : 0);  // extra field length
  out += e.name;
  if (zip64) {  // a local ZIP64 extra holds both sizes
    put16(out, kZip64ExtraId);
    put16(out, 16);
    put64(out, e.size);
    put64(out, e.size);
  }
}

void append_central_header(std::string& out, const ZipEntry& e) {
  const bool big_size = e.size >= kZip32Max;
  const bool big_offset = e.offset >= kZip32Max;
  const std::uint16_t extra = (big_size ? 16 : 0) + (big_offset ? 8 : 0);
  put32(out, 0x02014b50);
  put16(out, kMadeByUnix | kVersionZip64);
  put_common(out, e, big_size || big_offset, clamp32(e.size));
  put16(out, extra ? extra + 4u : 0u);
  put16(out, 0);               // comment length
  put16(out, 0);               // disk number start
  put16(out, 0);               // internal attributes
  put32(out, 0100644u << 16);  // external attributes: a regular file, rw-r--r--
  put32(out, clamp32(e.offset));
  out += e.name;
  if (extra) {  // only the fields that overflowed, in this order
    put16(out, kZip64ExtraId);
    put16(out, extra);
    if (big_size) {
      put64(out, e.size);
      put64(out, e.size);
    }
    if (big_offset) put64(out, e.offset);
  }
}

void append_end_records(std::string& out, std::uint64_t entries, std::uint64_t cd_offset,
                        std::uint64_t cd_size) {
  const bool zip64 = entries >= kZipEntriesMax || cd_offset >= kZip32Max || cd_size >= kZip32Max;
  if (zip64) {
    const std::uint64_t record_offset = cd_offset + cd_size;
    put32(out, 0x06064b50);  // ZIP64 end of central directory record
    put64(out, 44);          // size of the rest of the record
    put16(out, kMadeByUnix | kVersionZip64);
    put16(out, kVersionZip64);
    put32(out, 0);  // this disk
    put32(out, 0);  // disk with the central directory
    put64(out, entries);
    put64(out, entries);
    put64(out, cd_size);
    put64(out, cd_offset);
    put32(out, 0x07064b50);  // ZIP64 end of central directory locator
    put32(out, 0);
    put64(out, record_offset);
    put32(out, 1);  // total disks
  }
  const std::uint32_t count =
      entries >= kZipEntriesMax ? kZipEntriesMax : static_cast<std::uint32_t>(entries);
  put32(out, 0x06054b50);
  put16(out, 0);
  put16(out, 0);
  put16(out, count);
  put16(out, count);
  put32(out, clamp32(cd_size));
  put32(out, clamp32(cd_offset));
  put16(out, 0);  // comment length
}

}  // namespace p2x::xnat::detail
