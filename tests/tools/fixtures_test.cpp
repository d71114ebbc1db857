// Tests of the test fixtures themselves: synthetic DICOM generator, Orthanc/dcmqrscp launchers
// (load, C-FIND, C-MOVE, C-GET, restart, SIGKILL), and the counting proxy.
#include "support/counting_proxy.hpp"
#include "support/dicom_probe.hpp"
#include "support/pacs_fixture.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/testdata.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/oflog/oflog.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>

namespace fs = std::filesystem;
using namespace p2x::test;

namespace {

constexpr const char* kOurAe = "P2XTEST";

struct QuietDcmtk {
  QuietDcmtk() {
    setenv("TCP_NODELAY", "1", 1);
    OFLog::configure(OFLogger::WARN_LOG_LEVEL);
  }
};
const QuietDcmtk quiet;

std::unique_ptr<DcmFileFormat> read_dicom(const std::string& path) {
  auto ff = std::make_unique<DcmFileFormat>();
  REQUIRE(ff->loadFile(path.c_str()).good());
  return ff;
}

std::string str_of(DcmItem* item, const DcmTagKey& key) {
  OFString v;
  item->findAndGetOFStringArray(key, v);
  return v.c_str();
}

std::vector<std::string> all_files(const std::vector<GeneratedStudy>& studies) {
  std::vector<std::string> out;
  for (const auto& s : studies)
    for (const auto& f : s.files()) out.push_back(f);
  return out;
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) ++n;
  return n;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A storescp acting as our move destination, writing into dir.
struct StoreScp {
  std::uint16_t port = free_port();
  pid_t pid = -1;
  StoreScp(const std::string& dir, const std::string& log, bool accept_all) {
    fs::create_directories(dir);
    std::vector<std::string> argv = {"storescp", "-aet", kOurAe, "-od", dir, "-uf"};
    if (accept_all) argv.push_back("+xa");
    argv.push_back(std::to_string(port));
    SpawnOptions o;
    o.log_path = log;
    pid = spawn(argv, o);
    for (int i = 0; i < 200 && !echo(port, kOurAe, 1); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(echo(port, kOurAe, 1));
  }
  ~StoreScp() { stop_pid(pid, 2000); }
};

int run_tool(const std::vector<std::string>& argv, const std::string& log) {
  SpawnOptions o;
  o.log_path = log;
  return run(argv, o, 60000);
}

}  // namespace

TEST_CASE("generator writes the standard corpus with all odd cases", "[generator]") {
  TempDir tmp("p2x-gen");
  const auto specs = standard_corpus();
  const auto studies = generate(specs, tmp.file("data"), 7);
  REQUIRE(studies.size() == specs.size());

  int total = 0;
  bool saw_rle = false, saw_multiframe = false, saw_private = false, saw_gsps = false,
       saw_empty_accession = false;
  std::set<std::string> uids;
  std::map<std::pair<std::string, std::string>, int> per_patient_date;
  for (std::size_t i = 0; i < studies.size(); ++i) {
    const auto& st = studies[i];
    const auto& sp = specs[i];
    const int expected = sp.series * sp.instances + (sp.presentation_state ? 1 : 0);
    CHECK(st.instance_count() == expected);
    total += st.instance_count();
    CHECK(uids.insert(st.study_uid).second);
    ++per_patient_date[{sp.patient_id, sp.study_date}];
    for (const auto& se : st.series) {
      CHECK(uids.insert(se.uid).second);
      for (const auto& f : se.files) {
        CHECK(uids.insert(f.sop_uid).second);
        auto ff = read_dicom(f.path);
        DcmDataset* ds = ff->getDataset();
        CHECK(str_of(ds, DCM_SOPInstanceUID) == f.sop_uid);
        CHECK(str_of(ds, DCM_SOPClassUID) == f.sop_class);
        CHECK(str_of(ds, DCM_StudyInstanceUID) == st.study_uid);
        CHECK(str_of(ds, DCM_SeriesInstanceUID) == se.uid);
        CHECK(str_of(ds, DCM_PatientID) == sp.patient_id);
        CHECK(str_of(ds, DCM_AccessionNumber) == sp.accession);
        CHECK(str_of(ds, DCM_StudyDate) == sp.study_date);
        CHECK(std::atoi(str_of(ds, DCM_SeriesNumber).c_str()) == se.number);
        CHECK(str_of(ff->getMetaInfo(), DCM_TransferSyntaxUID) == f.transfer_syntax);
        CHECK(str_of(ds, DCM_Modality) == se.modality);
        if (f.transfer_syntax == UID_RLELosslessTransferSyntax) saw_rle = true;
        if (f.sop_class == UID_GrayscaleSoftcopyPresentationStateStorage) {
          saw_gsps = true;
          CHECK(se.modality == "PR");
        }
        Sint32 frames = 1;
        if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).good() && frames > 1) {
          saw_multiframe = true;
          Uint32 len = 0;
          DcmElement* px = nullptr;
          if (f.transfer_syntax == UID_LittleEndianExplicitTransferSyntax &&
              ds->findAndGetElement(DCM_PixelData, px).good()) {
            len = px->getLength();
            CHECK(len == Uint32(frames) * Uint32(sp.rows * sp.cols * 2));
          }
        }
        const char* creator = nullptr;
        if (ds->findAndGetString(DcmTagKey(0x0029, 0x0010), creator).good() && creator &&
            std::string(creator) == "P2X TEST")
          saw_private = true;
      }
    }
    if (sp.accession.empty()) saw_empty_accession = true;
  }
  CHECK(total < 200);
  CHECK(saw_rle);
  CHECK(saw_multiframe);
  CHECK(saw_private);
  CHECK(saw_gsps);
  CHECK(saw_empty_accession);
  int patients_with_two = 0;
  for (const auto& kv : per_patient_date)
    if (kv.second >= 2) ++patients_with_two;
  CHECK(patients_with_two >= 1);

  SECTION("manifest round trip") {
    write_manifest(studies, tmp.file("manifest.json"));
    const auto back = read_manifest(tmp.file("manifest.json"));
    REQUIRE(back.size() == studies.size());
    for (std::size_t i = 0; i < back.size(); ++i) {
      CHECK(back[i].study_uid == studies[i].study_uid);
      CHECK(back[i].spec.accession == studies[i].spec.accession);
      CHECK(back[i].instance_count() == studies[i].instance_count());
      CHECK(back[i].files() == studies[i].files());
    }
  }
  SECTION("deterministic per seed, distinct across seeds") {
    const auto again = generate(specs, tmp.file("again"), 7);
    const auto other = generate(specs, tmp.file("other"), 8);
    CHECK(again[0].study_uid == studies[0].study_uid);
    CHECK(again[0].series[1].files[0].sop_uid == studies[0].series[1].files[0].sop_uid);
    CHECK(other[0].study_uid != studies[0].study_uid);
    // identical pixel data for the same seed, different between instances
    auto a = read_dicom(again[0].series[1].files[0].path);
    auto b = read_dicom(studies[0].series[1].files[0].path);
    auto c = read_dicom(studies[0].series[1].files[1].path);
    const Uint16 *pa = nullptr, *pb = nullptr, *pc = nullptr;
    unsigned long na = 0, nb = 0, nc = 0;
    REQUIRE(a->getDataset()->findAndGetUint16Array(DCM_PixelData, pa, &na).good());
    REQUIRE(b->getDataset()->findAndGetUint16Array(DCM_PixelData, pb, &nb).good());
    REQUIRE(c->getDataset()->findAndGetUint16Array(DCM_PixelData, pc, &nc).good());
    REQUIRE(na == nb);
    REQUIRE(na == nc);
    CHECK(std::equal(pa, pa + na, pb));
    CHECK(!std::equal(pa, pa + na, pc));
  }
}

TEST_CASE("generator writes 600 MR instances of 256x256 quickly", "[generator]") {
  TempDir tmp("p2x-gen600");
  const auto t0 = std::chrono::steady_clock::now();
  const auto studies = generate(uniform_corpus(1, 6, 100, "MR"), tmp.path());
  const double secs = seconds_since(t0);
  WARN("generated 600 MR instances in " << secs << " s");
  REQUIRE(studies.at(0).instance_count() == 600);
  CHECK(fs::file_size(studies[0].series[0].files[0].path) > 256u * 256u * 2u);
  CHECK(secs < 10.0);
}

TEST_CASE("test PACS serves the standard corpus - survives restart and SIGKILL", "[pacs]") {
  const PacsKind kind = GENERATE(PacsKind::Dcmqrscp, PacsKind::Orthanc);
  INFO("PACS kind: " << to_string(kind));
  TempDir tmp("p2x-" + std::string(to_string(kind)));
  const auto studies = generate(standard_corpus(), tmp.file("data"));
  const int expected_total = [&] {
    int n = 0;
    for (const auto& s : studies) n += s.instance_count();
    return n;
  }();

  StoreScp dest(tmp.file("received"), tmp.file("storescp.log"), true);
  PacsFixture pacs(kind, tmp.file("pacs"), {{kOurAe, dest.port}});
  pacs.start();
  REQUIRE(pacs.running());
  REQUIRE(pacs.pid() > 0);
  CHECK(echo(pacs.port(), pacs.ae_title()));
  CHECK(probe_instance_count(pacs.port(), pacs.ae_title(), kOurAe) == 0);

  pacs.load(all_files(studies));
  auto found = probe_studies(pacs.port(), pacs.ae_title(), kOurAe);
  INFO(pacs.log_tail());
  REQUIRE(found.size() == studies.size());
  std::map<std::string, int> counts;
  for (const auto& f : found) counts[f.study_uid] = f.instance_count();
  for (const auto& s : studies) CHECK(counts[s.study_uid] == s.instance_count());

  // The empty-accession study is reachable by patient ID + date; one patient has two studies.
  const auto no_acc = probe_studies(pacs.port(), pacs.ae_title(), kOurAe, "", "PSTD04", "20240113");
  REQUIRE(no_acc.size() == 1);
  CHECK(no_acc[0].accession.empty());
  CHECK(probe_studies(pacs.port(), pacs.ae_title(), kOurAe, "", "PSTD05", "20240114").size() == 2);
  CHECK(probe_studies(pacs.port(), pacs.ae_title(), kOurAe, "STD002").size() == 1);

  SECTION("C-MOVE delivers the studies to the configured destination") {
    // multi-frame + RLE, US multi-frame, presentation state
    int expected = 0;
    for (std::size_t i : {0u, 2u, 6u}) {
      const auto& st = studies[i];
      expected += st.instance_count();
      const int rc =
          run_tool({"movescu", "-S", "-aet", kOurAe, "-aem", kOurAe, "-aec", pacs.ae_title(), "-k",
                    "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + st.study_uid,
                    "127.0.0.1", std::to_string(pacs.port())},
                   tmp.file("movescu.log"));
      INFO("study " << i << ": " << file_tail(tmp.file("movescu.log"), 3000));
      // dcmqrscp cannot send the RLE instance of study 0 (see standard_corpus()).
      CHECK(rc == (kind == PacsKind::Dcmqrscp && i == 0 ? 68 : 0));
    }
    if (kind == PacsKind::Dcmqrscp) --expected;
    CHECK(count_files(tmp.file("received")) == std::size_t(expected));
  }
  SECTION("C-GET returns the study on the same association") {
    const auto& st = studies[1];  // CT with private tags
    const std::string out = tmp.file("got");
    fs::create_directories(out);
    const int rc =
        run_tool({"getscu", "-S", "-aet", kOurAe, "-aec", pacs.ae_title(), "-od", out, "-k",
                  "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=" + st.study_uid, "127.0.0.1",
                  std::to_string(pacs.port())},
                 tmp.file("getscu.log"));
    INFO(file_tail(tmp.file("getscu.log"), 3000));
    CHECK(rc == 0);
    CHECK(count_files(out) == std::size_t(st.instance_count()));
  }
  SECTION("restart keeps the data on the same port") {
    const auto port = pacs.port();
    const pid_t old_pid = pacs.pid();
    pacs.restart();
    CHECK(pacs.port() == port);
    CHECK(pacs.pid() != old_pid);
    CHECK(probe_instance_count(pacs.port(), pacs.ae_title(), kOurAe) == expected_total);
  }
  SECTION("kill_hard stops it at once; a new start finds the data") {
    const pid_t old_pid = pacs.pid();
    pacs.kill_hard();
    CHECK_FALSE(pacs.running());
    CHECK(::kill(old_pid, 0) != 0);
    CHECK_FALSE(echo(pacs.port(), pacs.ae_title(), 1));
    pacs.start();
    CHECK(probe_instance_count(pacs.port(), pacs.ae_title(), kOurAe) == expected_total);
    pacs.stop();
    CHECK_FALSE(pacs.running());
    CHECK(::kill(old_pid, 0) != 0);
  }
}

TEST_CASE("a fixture can start empty on a given port and load later", "[pacs]") {
  TempDir tmp("p2x-late");
  const std::uint16_t port = free_port();
  PacsFixture pacs(PacsKind::Dcmqrscp, tmp.file("pacs"), {{kOurAe, 11112}}, port);
  CHECK(pacs.port() == port);
  CHECK_FALSE(pacs.running());
  CHECK_THROWS(pacs.load({}));
  pacs.start();
  CHECK(probe_instance_count(port, pacs.ae_title(), kOurAe) == 0);
  const auto studies = generate(uniform_corpus(2, 1, 2, "CT"), tmp.file("data"));
  pacs.load(all_files(studies));
  CHECK(probe_instance_count(port, pacs.ae_title(), kOurAe) == 4);
  // storing a file that is not DICOM fails loudly
  const std::string junk = tmp.file("junk.dcm");
  { std::ofstream(junk) << "not dicom"; }
  CHECK_THROWS(pacs.load({junk}));
}

namespace {

// The child's TCP_NODELAY environment entry as it started ("" when it has none).
std::string tcp_nodelay_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0'))
    if (entry.rfind("TCP_NODELAY=", 0) == 0) return entry;
  return "";
}

}  // namespace

TEST_CASE("a fixture PACS runs with TCP_NODELAY=1 by default and stock (none) on request",
          "[pacs]") {
  setenv("TCP_NODELAY", "1", 1);  // ours says 1: a stock child must not inherit it
  TempDir tmp("p2x-stock");
  for (auto kind : {PacsKind::Dcmqrscp, PacsKind::Orthanc}) {
    INFO(to_string(kind));
    PacsFixture pacs(kind, tmp.file(to_string(kind)), {{kOurAe, 11112}});
    CHECK_FALSE(pacs.stock());
    pacs.start();
    CHECK(tcp_nodelay_of(pacs.pid()) == "TCP_NODELAY=1");
    CHECK(pacs.label() == to_string(kind));
    pacs.set_stock(true);
    pacs.restart();
    CHECK(tcp_nodelay_of(pacs.pid()).empty());
    CHECK(pacs.label() == std::string(to_string(kind)) + "-stock");
    CHECK(echo(pacs.port(), pacs.ae_title()));
    pacs.stop();
  }
}

TEST_CASE("counting proxy counts concurrent associations", "[proxy]") {
  TempDir tmp("p2x-proxy");
  PacsFixture pacs(PacsKind::Dcmqrscp, tmp.file("pacs"), {});
  pacs.start();
  CountingProxy proxy(pacs.port());
  CHECK(proxy.current() == 0);

  auto make_scu = [&](DcmSCU& scu) {
    scu.setAETitle(kOurAe);
    scu.setPeerHostName("127.0.0.1");
    scu.setPeerPort(proxy.port());
    scu.setPeerAETitle(pacs.ae_title().c_str());
    OFList<OFString> ts;
    ts.push_back(UID_LittleEndianImplicitTransferSyntax);
    scu.addPresentationContext(UID_VerificationSOPClass, ts);
    REQUIRE(scu.initNetwork().good());
    REQUIRE(scu.negotiateAssociation().good());
  };
  {
    DcmSCU a, b;
    make_scu(a);
    make_scu(b);
    CHECK(a.sendECHORequest(0).good());
    CHECK(b.sendECHORequest(0).good());
    CHECK(proxy.current() == 2);
    CHECK(proxy.max_concurrent() == 2);
    a.releaseAssociation();
    b.releaseAssociation();
  }
  CHECK(proxy.wait_current(0, 5000));
  CHECK(proxy.total_connections() == 2);
  CHECK(echo(proxy.port(), pacs.ae_title()));  // sequential: max stays 2
  CHECK(proxy.wait_current(0, 5000));
  CHECK(proxy.max_concurrent() == 2);
  CHECK(proxy.total_connections() == 3);
  proxy.reset_counts();
  CHECK(proxy.max_concurrent() == 0);
  CHECK(proxy.total_connections() == 0);
}

// Benchmark (hidden: run with `fixtures_test "[bench]"`): generate and load 600 MR instances.
TEST_CASE("generate and load 600 MR instances into each PACS", "[.][bench]") {
  const PacsKind kind = GENERATE(PacsKind::Dcmqrscp, PacsKind::Orthanc);
  TempDir tmp("p2x-bench-" + std::string(to_string(kind)));
  auto t0 = std::chrono::steady_clock::now();
  const auto studies = generate(uniform_corpus(1, 6, 100, "MR"), tmp.file("data"));
  const double gen = seconds_since(t0);
  PacsFixture pacs(kind, tmp.file("pacs"), {{kOurAe, 11112}});
  t0 = std::chrono::steady_clock::now();
  pacs.start();
  const double start = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  pacs.load(all_files(studies));
  const double load = seconds_since(t0);
  WARN(to_string(kind) << ": generate " << gen << " s, start " << start << " s, load 600 " << load
                       << " s");
  CHECK(probe_instance_count(pacs.port(), pacs.ae_title(), kOurAe) == 600);
}
