// check_received_file (lib/pacs/received_check.hpp): what the Storage SCP accepts from a received
// Part 10 file. Files are written with DCMTK into a temp directory; each case changes one thing.
// The last case sends such files with DCMTK's storescu to the real Storage SCP.
#include "pacs/pacs.hpp"
#include "pacs/received_check.hpp"
#include "support/pacs_fixture.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

using p2x::pacs::check_received_file;
using p2x::pacs::ReceivedFault;

namespace {

const std::string kStudy = "1.2.826.0.1.3680043.2.1125.1";
const std::string kSeries = "1.2.826.0.1.3680043.2.1125.1.2";
const std::string kSop = "1.2.826.0.1.3680043.2.1125.1.2.3";

struct Uids {
  std::string study = kStudy, series = kSeries, sop = kSop;
};

// A small CT image header, with `pixel_bytes` of pixel data, saved as a Part 10 file.
std::string write_instance(const p2x::test::TempDir& dir, const std::string& name, const Uids& uids,
                           std::size_t pixel_bytes = 0,
                           E_TransferSyntax xfer = EXS_LittleEndianExplicit) {
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage);
  ds->putAndInsertString(DCM_PatientID, "P1");
  if (!uids.study.empty()) ds->putAndInsertString(DCM_StudyInstanceUID, uids.study.c_str());
  if (!uids.series.empty()) ds->putAndInsertString(DCM_SeriesInstanceUID, uids.series.c_str());
  if (!uids.sop.empty()) ds->putAndInsertString(DCM_SOPInstanceUID, uids.sop.c_str());
  if (pixel_bytes > 0) {
    const std::vector<Uint8> pixels(pixel_bytes, 7);
    ds->putAndInsertUint8Array(DCM_PixelData, pixels.data(), pixels.size());
  }
  const std::string path = dir.file(name);
  REQUIRE(file.saveFile(path.c_str(), xfer).good());
  return path;
}

std::string write_bytes(const p2x::test::TempDir& dir, const std::string& name,
                        const std::string& bytes) {
  const std::string path = dir.file(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// Our Storage SCP awaiting kStudy from AE SENDER into dir/study, and storescu to send to it.
struct ScpUnderTest {
  p2x::test::TempDir dir{"p2x-received"};
  const std::string dest = dir.file("study");
  const std::uint16_t port = p2x::test::free_port();
  p2x::pacs::StorageScp scp{"P2XSTORE", port, 2, options()};
  std::unique_ptr<p2x::pacs::StorageScp::Route> route;

  ScpUnderTest() {
    scp.start();
    route = scp.expect(kStudy, dest, {"SENDER"});
  }
  ~ScpUnderTest() {
    route.reset();
    scp.stop();
  }
  p2x::pacs::ScpOptions options() const {
    p2x::pacs::ScpOptions o;
    o.staging_dir = dir.file("staging");
    return o;
  }
  // storescu of `file` (with `extra` options first); its output in dir/storescu.log.
  void send(const std::string& file, const std::vector<std::string>& extra = {}) {
    p2x::test::SpawnOptions so;
    so.log_path = dir.file("storescu.log");
    std::vector<std::string> argv = {"storescu", "-v"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (const std::string& a :
         {std::string("-aet"), std::string("SENDER"), std::string("-aec"), std::string("P2XSTORE"),
          std::string("127.0.0.1"), std::to_string(port), file})
      argv.push_back(a);
    p2x::test::run(argv, so, 30000);
  }
  std::string log() const { return p2x::test::file_tail(dir.file("storescu.log"), 8192); }
};

}  // namespace

TEST_CASE("received_check: a well-formed instance is accepted with its three UIDs") {
  p2x::test::TempDir dir("p2x-received");
  for (const auto xfer :
       {EXS_LittleEndianExplicit, EXS_LittleEndianImplicit, EXS_BigEndianExplicit}) {
    const auto check = check_received_file(write_instance(dir, "ok.dcm", {}, 4096, xfer), kSop);
    CHECK(check.ok());
    CHECK(check.error.empty());
    CHECK(check.study_uid == kStudy);
    CHECK(check.series_uid == kSeries);
    CHECK(check.sop_uid == kSop);
  }
}

TEST_CASE("received_check: an instance other than the one announced is a mismatch") {
  p2x::test::TempDir dir("p2x-received");
  const auto check = check_received_file(write_instance(dir, "a.dcm", {}), kSop + ".9");
  CHECK(check.fault == ReceivedFault::SopMismatch);
  CHECK(check.error == "SOP Instance UID differs from Affected SOP Instance UID");
  CHECK(check.study_uid == kStudy);  // read before the refusal, for the log
}

TEST_CASE("received_check: a missing or malformed UID is refused and named") {
  p2x::test::TempDir dir("p2x-received");
  struct Case {
    Uids uids;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"", kSeries, kSop}, "no Study Instance UID"},
      {{kStudy, "", kSop}, "no Series Instance UID"},
      {{"../../../etc", kSeries, kSop}, "invalid Study Instance UID: not digits/dots"},
      {{kStudy + "\\1.2.3", kSeries, kSop}, "invalid Study Instance UID: not digits/dots"},
      {{kStudy, "1.2..3", kSop}, "invalid Series Instance UID: empty part"},
      {{kStudy, "1." + std::string(70, '2'), kSop}, "invalid Series Instance UID: over 64 chars"},
      {{kStudy, kSeries, "1.2.*"}, "invalid SOP Instance UID: not digits/dots"},
  };
  for (const auto& c : cases) {
    INFO(c.error);
    const auto check = check_received_file(write_instance(dir, "bad.dcm", c.uids), c.uids.sop);
    CHECK(check.fault == ReceivedFault::BadUid);
    CHECK(check.error == c.error);
    CHECK(check.error.size() <= 64);  // fits a C-STORE ErrorComment
  }
}

TEST_CASE("received_check: a deflated data set is refused unread") {
  p2x::test::TempDir dir("p2x-received");
  const auto check = check_received_file(
      write_instance(dir, "deflated.dcm", {}, 0, EXS_DeflatedLittleEndianExplicit), kSop);
  CHECK(check.fault == ReceivedFault::Deflated);
  CHECK(check.error == "deflated data set not accepted");
  CHECK(check.study_uid.empty());
}

TEST_CASE(
    "received_check: the Storage SCP never accepts a deflated transfer syntax, so a "
    "sender holding a deflated file sends it inflated") {
  ScpUnderTest t;
  // -xd: propose deflated first (and uncompressed after it, which the SCP must choose).
  t.send(write_instance(t.dir, "deflated.dcm", {}, 4096, EXS_DeflatedLittleEndianExplicit),
         {"-xd"});
  INFO(t.log());
  REQUIRE(t.route->wait_for(1, std::chrono::seconds(5)));
  CHECK(t.scp.refused() == 0);
  DcmFileFormat stored;
  REQUIRE(stored.loadFile((t.dest + "/" + kSop + ".dcm").c_str()).good());
  CHECK(stored.getDataset()->getOriginalXfer() != EXS_DeflatedLittleEndianExplicit);
}

TEST_CASE("received_check: a file DCMTK cannot read is unreadable, never a crash") {
  p2x::test::TempDir dir("p2x-received");
  const std::string good = write_instance(dir, "good.dcm", {});
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& [name, content] : std::vector<std::pair<std::string, std::string>>{
           {"empty", ""},
           {"text", "study,uid\n1.2.3,4\n"},
           {"preamble-only", std::string(128, '\0') + "DICM"},
       }) {
    INFO(name);
    const auto check = check_received_file(write_bytes(dir, name, content), kSop);
    CHECK(check.fault == ReceivedFault::Unreadable);
    CHECK(check.error == "data set not readable");
  }
  CHECK(check_received_file(dir.file("missing.dcm"), kSop).fault == ReceivedFault::Unreadable);
  // Cut inside the meta header: DCMTK gives up.
  CHECK(check_received_file(write_bytes(dir, "cut", bytes.substr(0, 140)), kSop).fault ==
        ReceivedFault::Unreadable);
}

TEST_CASE("received_check: a file cut short inside a value is unreadable") {
  p2x::test::TempDir dir("p2x-received");
  const std::string good = write_instance(dir, "good.dcm", {}, 8192);
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Drop the last 4 KiB of pixel data: the Pixel Data length now points past the end.
  bytes.resize(bytes.size() - 4096);
  const auto check = check_received_file(write_bytes(dir, "truncated", bytes), kSop);
  CHECK(check.fault == ReceivedFault::Unreadable);
}

TEST_CASE(
    "received_check: the Storage SCP refuses an instance of the awaited study whose "
    "series UID is not a UID") {
  ScpUnderTest t;
  t.send(write_instance(t.dir, "evil.dcm", {kStudy, "../../../../tmp/x", kSop + ".1"}));
  t.send(write_instance(t.dir, "odd.dcm", {kStudy, kSeries + "\\1.2", kSop + ".2"}));
  CHECK(t.scp.refused() == 2);
  CHECK(t.route->received() == 0);
  // Both answered 0xC000 (the reason, in the ErrorComment, is in the SCP's log line).
  const std::string log = t.log();
  INFO(log);
  const std::string refusal = "Received Store Response (Error: CannotUnderstand)";
  const auto first = log.find(refusal);
  CHECK((first != std::string::npos && log.find(refusal, first + 1) != std::string::npos));
  t.send(write_instance(t.dir, "good.dcm", {}));
  CHECK(t.route->wait_for(1, std::chrono::seconds(5)));
  CHECK(t.route->files() == std::vector<std::string>{t.dest + "/" + kSop + ".dcm"});
}
