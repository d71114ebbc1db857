// lib/dicomfile: the CRC-32 of a file read through DCMTK's parser (values left on disk, putback
// included) is the CRC of the file's bytes, for every kind of file the test data generator
// writes; a file that is not DICOM still gets its CRC; a missing file is reported.
#include <zlib.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "dicomfile/dicomfile.hpp"
#include "support/temp_dir.hpp"
#include "support/testdata.hpp"

using p2x::dicomfile::load_with_crc;
using namespace p2x::test;

namespace {

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::uint32_t zlib_crc(const std::string& data) {
  return static_cast<std::uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

std::string sop_of(DcmFileFormat& file) {
  OFString v;
  file.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, v);
  return v.c_str();
}

}  // namespace

TEST_CASE("the CRC of a parsed file is the CRC of its bytes, whatever DCMTK skipped",
          "[dicomfile]") {
  TempDir dir;
  // Odd cases: multi-frame, RLE, private tags, a presentation state; 512x512 pixels are far
  // beyond the 4 KiB read limit (left on disk, so DCMTK skips them).
  auto specs = standard_corpus(true);
  for (auto& s : specs) s.rows = s.cols = 512;
  const auto studies = generate(specs, dir.file("data"));
  int files = 0;
  for (const auto& st : studies) {
    for (const auto& series : st.series) {
      for (const auto& f : series.files) {
        INFO(f.path);
        const std::string data = bytes_of(f.path);
        for (const std::uint32_t limit : {4096u, 0xFFFFFFFFu}) {
          DcmFileFormat file;
          const auto r = load_with_crc(f.path, file, limit);
          REQUIRE(r.ok);
          CHECK(r.crc_known);
          CHECK(r.size == data.size());
          CHECK(r.crc == zlib_crc(data));
          CHECK(sop_of(file) == f.sop_uid);
        }
        ++files;
      }
    }
  }
  CHECK(files == 35);
}

TEST_CASE("a file that is not DICOM still has its CRC, a missing one is an error", "[dicomfile]") {
  TempDir dir;
  const std::string junk = dir.file("junk.dcm");
  std::string data(100000, 'x');
  data[5] = '\0';
  std::ofstream(junk, std::ios::binary) << data;
  DcmFileFormat file;
  const auto r = load_with_crc(junk, file);
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.error.empty());
  CHECK(r.crc_known);
  CHECK(r.crc == zlib_crc(bytes_of(junk)));
  CHECK(r.size == data.size());

  DcmFileFormat none;
  const auto m = load_with_crc(dir.file("missing.dcm"), none);
  CHECK_FALSE(m.ok);
  CHECK_FALSE(m.crc_known);
  CHECK(m.error.find("cannot open") != std::string::npos);
}

TEST_CASE("a truncated DICOM file fails to parse but its CRC covers what is there", "[dicomfile]") {
  TempDir dir;
  const auto studies = generate(uniform_corpus(1, 1, 1), dir.file("data"));
  const std::string path = studies[0].series[0].files[0].path;
  std::string data = bytes_of(path);
  data.resize(data.size() / 2);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  DcmFileFormat file;
  const auto r = load_with_crc(path, file);
  CHECK_FALSE(r.ok);
  CHECK(r.crc_known);
  CHECK(r.crc == zlib_crc(data));
}
