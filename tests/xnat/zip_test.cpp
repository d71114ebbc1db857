// Tests of the streamed study zip (lib/xnat/zip_writer, zip_records): the bytes are a STORED zip
// that independent readers accept (libarchive's seekable and streaming readers, python3's
// zipfile), every local header carries the real CRC-32 and sizes with no data descriptor (what
// Java's ZipInputStream, used by XNAT, needs), ZIP64 records where counts or sizes overflow, and a
// file changed after the CRC pass is refused rather than sent with a wrong CRC.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include "support/temp_dir.hpp"
#include "xnat/zip_writer.hpp"

namespace fs = std::filesystem;
using namespace p2x::xnat::detail;
using p2x::test::TempDir;

namespace {

using Files = std::map<std::string, std::string>;

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string stream_all(ZipStream& z, std::size_t cap) {
  std::string out, buf(cap, '\0');
  for (std::size_t n; (n = z.read(buf.data(), cap)) > 0;) out.append(buf, 0, n);
  return out;
}

std::uint32_t le16(const std::string& b, std::size_t at) {
  return static_cast<unsigned char>(b.at(at)) | static_cast<unsigned char>(b.at(at + 1)) << 8;
}
std::uint32_t le32(const std::string& b, std::size_t at) {
  return le16(b, at) | le16(b, at + 2) << 16;
}
std::uint64_t le64(const std::string& b, std::size_t at) {
  return le32(b, at) | static_cast<std::uint64_t>(le32(b, at + 4)) << 32;
}

// True when any local header has flag bit 3 (data descriptor) set: sizes and CRC follow the data.
bool uses_data_descriptors(const std::string& zip) {
  for (std::size_t at = 0; at + 30 <= zip.size() && le32(zip, at) == 0x04034b50;) {
    if (le16(zip, at + 6) & kFlagDataDescriptor) return true;
    at += 30 + le16(zip, at + 26) + le16(zip, at + 28) + le32(zip, at + 18);
  }
  return false;
}

// Reads the archive front to back through its local headers only, as Java's ZipInputStream
// does: each must be STORED, have flag bit 3 (data descriptor) clear and give the real sizes and
// CRC. Then checks the central directory's flags too.
Files walk_local_headers(const std::string& zip) {
  Files got;
  std::size_t at = 0;
  while (le32(zip, at) == 0x04034b50) {
    INFO("local header at " << at);
    REQUIRE((le16(zip, at + 6) & kFlagDataDescriptor) == 0);
    REQUIRE(le16(zip, at + 8) == 0);  // stored
    const std::uint32_t crc = le32(zip, at + 14), csize = le32(zip, at + 18),
                        usize = le32(zip, at + 22);
    REQUIRE(csize == usize);
    const std::size_t name_len = le16(zip, at + 26), extra_len = le16(zip, at + 28);
    const std::string name = zip.substr(at + 30, name_len);
    const std::size_t data = at + 30 + name_len + extra_len;
    const std::string bytes = zip.substr(data, usize);
    REQUIRE(bytes.size() == usize);
    REQUIRE(crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()) == crc);
    got[name] = bytes;
    at = data + usize;
  }
  REQUIRE(le32(zip, at) == 0x02014b50);  // the central directory follows the last entry
  for (; le32(zip, at) == 0x02014b50; at += 46 + le16(zip, at + 28) + le16(zip, at + 30))
    REQUIRE((le16(zip, at + 8) & kFlagDataDescriptor) == 0);
  return got;
}

Files read_with_libarchive(const std::string& zip, bool streaming) {
  // libarchive converts UTF-8 names to the locale's charset: give it one that holds them all.
  const std::string old_locale = std::setlocale(LC_CTYPE, nullptr);
  std::setlocale(LC_CTYPE, "C.UTF-8");
  Files got;
  archive* a = archive_read_new();
  if (streaming)
    archive_read_support_format_zip_streamable(a);
  else
    archive_read_support_format_zip_seekable(a);
  REQUIRE(archive_read_open_memory(a, zip.data(), zip.size()) == ARCHIVE_OK);
  archive_entry* e;
  int rc;
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    std::string data(static_cast<size_t>(archive_entry_size(e)), '\0');
    if (!data.empty())
      REQUIRE(archive_read_data(a, data.data(), data.size()) == la_ssize_t(data.size()));
    got[archive_entry_pathname(e)] = data;
  }
  CHECK(rc == ARCHIVE_EOF);
  archive_read_free(a);
  std::setlocale(LC_CTYPE, old_locale.c_str());
  return got;
}

// python3's zipfile: testzip() re-reads every entry and checks its CRC; prints the entry count.
int python_entries(const fs::path& zip, const fs::path& out) {
  const std::string cmd =
      "/usr/bin/python3 -c 'import sys,zipfile\n"
      "z=zipfile.ZipFile(sys.argv[1])\n"
      "assert z.testzip() is None\n"
      "assert all(i.flag_bits & 8 == 0 and i.compress_type == 0 for i in z.infolist())\n"
      "print(len(z.infolist()))' " +
      zip.string() + " > " + out.string();
  if (std::system(cmd.c_str()) != 0) return -1;
  int n = -1;
  std::ifstream(out) >> n;
  return n;
}

void set_mtime_ns(const fs::path& p, std::int64_t ns) {
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = ns / 1000000000;
  ts[0].tv_nsec = ts[1].tv_nsec = ns % 1000000000;
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0);
}

}  // namespace

TEST_CASE("zip stream: stored, real CRCs and sizes in local headers, no data descriptors") {
  TempDir d("p2x-xnat-zip");
  const fs::path study = d.file("study");
  const Files want = {{"a.dcm", std::string(3 << 20, 'x') + "end"},
                      {"sub/b.dcm", "bbb"},
                      {"sub/deeper/c.dcm", ""},
                      {"sub/\xc3\xa9t\xc3\xa9.dcm", "utf-8 name"}};
  for (const auto& [name, text] : want) write_file(study / name, text);

  const ZipPlan plan = plan_zip(study.string() + "/");
  REQUIRE(plan.entries.size() == 4);
  CHECK(plan.bytes_in == (3u << 20) + 3 + 3 + 10);
  CHECK(plan.zip_size < plan.bytes_in + 1000);
  ZipStream z(plan);
  const std::string zip = stream_all(z, 777);  // small reads cross every record boundary
  CHECK(zip.size() == plan.zip_size);
  z.restart();
  CHECK(stream_all(z, 1 << 20) == zip);  // restart: same bytes again

  CHECK_FALSE(uses_data_descriptors(zip));
  CHECK(walk_local_headers(zip) == want);
  CHECK(read_with_libarchive(zip, false) == want);
  CHECK(read_with_libarchive(zip, true) == want);
  const fs::path file = d.file("out.zip");
  std::ofstream(file, std::ios::binary) << zip;
  CHECK(python_entries(file, d.file("py.txt")) == 4);
  CHECK(std::system(
            ("unzip -tqq " + file.string() + " >/dev/null 2>&1 || ! command -v unzip >/dev/null")
                .c_str()) == 0);

  fs::create_directories(d.file("empty"));
  CHECK_THROWS_WITH(plan_zip(d.file("empty")), Catch::Contains("holds no files"));
  CHECK_THROWS_WITH(plan_zip(d.file("nope")), Catch::Contains("does not exist"));
}

TEST_CASE("the data descriptor check catches a writer that uses them") {
  // python3's zipfile writing to a pipe (unseekable) puts sizes and CRCs after the data.
  TempDir d("p2x-xnat-zip");
  write_file(d.file("in/a.dcm"), "some bytes");
  const fs::path out = d.file("piped.zip");
  const std::string cmd =
      "/usr/bin/python3 -c 'import sys,zipfile\n"
      "z=zipfile.ZipFile(sys.stdout.buffer,\"w\")\n"
      "z.write(sys.argv[1],\"a.dcm\")\n"
      "z.close()' " +
      d.file("in/a.dcm") + " | cat > " + out.string();
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(out, std::ios::binary);
  const std::string zip((std::istreambuf_iterator<char>(in)), {});
  REQUIRE(zip.size() > 30);
  CHECK(uses_data_descriptors(zip));
  const ZipPlan plan = plan_zip(d.file("in"));
  ZipStream z(plan);
  CHECK_FALSE(uses_data_descriptors(stream_all(z, 4096)));
}

TEST_CASE("zip stream: a file changed after the CRC pass is refused, never sent with a wrong CRC") {
  TempDir d("p2x-xnat-zip");
  const fs::path study = d.file("study");
  write_file(study / "1.dcm", std::string(200000, 'a'));
  write_file(study / "2.dcm", std::string(200000, 'b'));
  const ZipPlan plan = plan_zip(study.string());
  ZipStream z(plan);
  std::string buf(1 << 16, '\0');

  SECTION("same size and mtime, other bytes: the CRC of the bytes read differs") {
    write_file(study / "2.dcm", std::string(199999, 'b') + "c");
    set_mtime_ns(study / "2.dcm", plan.entries[1].mtime_ns);
    CHECK_THROWS_MATCHES(stream_all(z, 1 << 16), ZipSourceChanged,
                         Catch::Matchers::Message(
                             "study file " + (study / "2.dcm").string() +
                             " changed since it was checked (the bytes read have another CRC-32)"));
  }
  SECTION("grown") {
    std::ofstream(study / "1.dcm", std::ios::app) << "more";
    CHECK_THROWS_WITH(stream_all(z, 1 << 16),
                      Catch::Contains("1.dcm is longer than the 200000 bytes"));
  }
  SECTION("shrunk") {
    write_file(study / "1.dcm", "a");
    CHECK_THROWS_WITH(stream_all(z, 1 << 16),
                      Catch::Contains("1.dcm is shorter than the 200000 bytes"));
  }
  SECTION("removed") {
    fs::remove(study / "2.dcm");
    CHECK_THROWS_WITH(stream_all(z, 1 << 16), Catch::Contains("2.dcm disappeared"));
  }
  SECTION("touched only: the bytes are the same, so they are sent") {
    set_mtime_ns(study / "1.dcm", plan.entries[0].mtime_ns + 1000000000);
    CHECK(stream_all(z, 1 << 16).size() == plan.zip_size);
  }
}

namespace {

// Entries for `files` with the CRCs of their current bytes (what validation records).
std::vector<ZipEntry> known_entries(const fs::path& dir, const std::vector<std::string>& names) {
  std::vector<ZipEntry> out;
  for (const auto& name : names) {
    std::ifstream in(dir / name, std::ios::binary);
    const std::string data{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    ZipEntry e;
    e.path = (dir / name).string();
    e.name = name;
    e.size = data.size();
    e.crc = static_cast<std::uint32_t>(
        crc32_z(0, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    out.push_back(e);
  }
  return out;
}

}  // namespace

TEST_CASE(
    "zip stream from validated CRCs: the same archive as the CRC pass makes, only listed "
    "files, and a changed file never completes") {
  TempDir d("p2x-xnat-zip");
  const fs::path study = d.file("study");
  write_file(study / "1.dcm", std::string(300000, 'a'));
  write_file(study / "2.dcm", std::string(300000, 'b'));
  write_file(study / ".p2x-1-2-3.part", "left by a killed run");
  const ZipPlan known = plan_zip_known(known_entries(study, {"2.dcm", "1.dcm"}));
  REQUIRE(known.entries.size() == 2);
  CHECK(known.entries[0].name == "1.dcm");  // sorted by name, like plan_zip

  SECTION("what is listed, and nothing else") {
    ZipStream z(known);
    const std::string zip = stream_all(z, 1 << 16);
    CHECK(zip.size() == known.zip_size);
    CHECK(zip.find("left by a killed run") == std::string::npos);
    CHECK_FALSE(uses_data_descriptors(zip));
  }
  SECTION("changed after validation: the last byte of that file is never handed out") {
    write_file(study / "2.dcm", std::string(299999, 'b') + "X");
    ZipStream z(known);
    std::string out, buf(1 << 16, '\0');
    try {
      for (std::size_t n; (n = z.read(buf.data(), buf.size())) > 0;) out.append(buf, 0, n);
      FAIL("no exception");
    } catch (const ZipSourceChanged& e) {
      CHECK(e.path == (study / "2.dcm").string());
    }
    const ZipEntry& second = known.entries[1];
    CHECK(out.size() < second.offset + 30 + second.name.size() + second.size);
    CHECK(out.find('X') == std::string::npos);
  }
  SECTION("a size that no longer matches is refused before anything is sent") {
    const auto entries = known_entries(study, {"1.dcm"});
    write_file(study / "1.dcm", "short");
    CHECK_THROWS_AS(plan_zip_known(entries), ZipSourceChanged);
  }
  CHECK_THROWS_AS(plan_zip_known({}), std::runtime_error);
}

TEST_CASE("zip records: ZIP64 fields for a > 4 GiB entry and offset") {
  ZipEntry e;
  e.name = "big.dcm";
  e.size = 5ull << 30;
  e.offset = 6ull << 30;
  e.crc = 0x12345678;
  std::string local;
  append_local_header(local, e);
  CHECK(le16(local, 4) == 45);
  CHECK((le16(local, 6) & kFlagDataDescriptor) == 0);
  CHECK(le32(local, 14) == 0x12345678);
  CHECK(le32(local, 18) == 0xFFFFFFFFu);
  CHECK(le32(local, 22) == 0xFFFFFFFFu);
  REQUIRE(le16(local, 28) == 20);
  CHECK(le16(local, 30 + 7) == 1);  // ZIP64 extra id
  CHECK(le16(local, 32 + 7) == 16);
  CHECK(le64(local, 34 + 7) == e.size);
  CHECK(le64(local, 42 + 7) == e.size);

  std::string central;
  append_central_header(central, e);
  CHECK(le32(central, 42) == 0xFFFFFFFFu);  // offset in the extra
  REQUIRE(le16(central, 30) == 28);
  CHECK(le16(central, 46 + 7 + 2) == 24);
  CHECK(le64(central, 46 + 7 + 4) == e.size);
  CHECK(le64(central, 46 + 7 + 12) == e.size);
  CHECK(le64(central, 46 + 7 + 20) == e.offset);

  e.size = 10;
  e.offset = 0;
  central.clear();
  append_central_header(central, e);
  CHECK(le16(central, 30) == 0);  // no extra when nothing overflows

  std::string end;
  append_end_records(end, 10, 100, 50);
  CHECK(end.size() == 22);  // classic end record only
  end.clear();
  append_end_records(end, 70000, 100, 50);
  REQUIRE(end.size() == 56 + 20 + 22);
  CHECK(le32(end, 0) == 0x06064b50);
  CHECK(le64(end, 24) == 70000);
  CHECK(le64(end, 48) == 100);
  CHECK(le32(end, 56) == 0x07064b50);
  CHECK(le64(end, 64) == 150);
  CHECK(le16(end, 76 + 8) == 0xFFFF);
}

TEST_CASE("zip stream: more than 65535 entries use ZIP64 and read back") {
  TempDir d("p2x-xnat-zip");
  const fs::path study = d.file("study");
  const int n = 65540;
  for (int i = 0; i < n; ++i) {
    const fs::path dir = study / std::to_string(i / 1000);
    if (i % 1000 == 0) fs::create_directories(dir);
    std::ofstream(dir / (std::to_string(i) + ".dcm")) << i;
  }
  const ZipPlan plan = plan_zip(study.string());
  REQUIRE(plan.entries.size() == static_cast<std::size_t>(n));
  ZipStream z(plan);
  const std::string zip = stream_all(z, 1 << 20);
  REQUIRE(zip.size() == plan.zip_size);
  CHECK(le32(zip, plan.cd_offset + plan.cd_size) == 0x06064b50);
  CHECK(walk_local_headers(zip).size() == static_cast<std::size_t>(n));
  CHECK(read_with_libarchive(zip, false).size() == static_cast<std::size_t>(n));
  const fs::path file = d.file("many.zip");
  std::ofstream(file, std::ios::binary) << zip;
  CHECK(python_entries(file, d.file("py.txt")) == n);
}
