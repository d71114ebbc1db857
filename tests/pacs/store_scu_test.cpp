// pacs::Client::send_study (C-STORE SCU) against a real DICOM peer standing in for XNAT's
// receiver: DCMTK's storescp (AE XNAT, started per case on a free port), plus small fake peers
// for rejections and silence. Checks what arrives (every file, Patient Comments as given,
// original transfer syntax, identical pixel data and other attributes, one association),
// lossless-only fallback conversion, per-file failures, that the source files stay untouched,
// and the error kinds.
// Run: build-dir/tests/pacs/store_scu_test
#include "pacs/pacs.hpp"

#include "support/pacs_fixture.hpp"
#include "support/process.hpp"
#include "support/testdata.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using namespace p2x;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kRouting = "Project: PROJ Subject: S1 Session: E1";

// The receiver as a Peer: AE XNAT on 127.0.0.1:port, short timeouts.
pacs::Peer receiver(std::uint16_t port, int acse_s, int dimse_s) {
  pacs::Peer p;
  p.ae_title = "XNAT";
  p.host = "127.0.0.1";
  p.port = port;
  p.our_ae = "P2XTEST";
  p.timeouts.connect_s = 3;
  p.timeouts.acse_s = acse_s;
  p.timeouts.dimse_s = dimse_s;
  return p;
}

pacs::SendResult send(const pacs::Peer& peer, const std::string& dir) {
  return pacs::Client(peer).send_study(dir, {kRouting});
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> snapshot(const std::vector<std::string>& files) {
  std::map<std::string, std::string> m;
  for (const auto& f : files) m[f] = read_all(f);
  return m;
}

std::string get(DcmItem& item, const DcmTagKey& key) {
  OFString v;
  item.findAndGetOFStringArray(key, v);
  return v.c_str();
}

std::unique_ptr<DcmFileFormat> load(const std::string& path) {
  auto ff = std::make_unique<DcmFileFormat>();
  const OFCondition c = ff->loadFile(path.c_str());
  if (c.bad()) throw std::runtime_error("cannot load " + path + ": " + c.text());
  ff->loadAllDataIntoMemory();
  return ff;
}

// Pixel data as stored: the fragments of encapsulated data, or the native value bytes.
std::string pixel_bytes(DcmDataset& ds) {
  DcmElement* el = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, el).bad() || el == nullptr) return {};
  auto* px = dynamic_cast<DcmPixelData*>(el);
  REQUIRE(px != nullptr);
  const E_TransferSyntax x = ds.getOriginalXfer();
  std::string out;
  if (DcmXfer(x).isEncapsulated()) {
    DcmPixelSequence* seq = nullptr;
    REQUIRE(px->getEncapsulatedRepresentation(x, nullptr, seq).good());
    REQUIRE(seq != nullptr);
    for (unsigned long i = 0; i < seq->card(); ++i) {
      DcmPixelItem* item = nullptr;
      REQUIRE(seq->getItem(item, i).good());
      Uint8* p = nullptr;
      item->getUint8Array(p);
      out += "|" + std::string(reinterpret_cast<const char*>(p), p ? item->getLength() : 0);
    }
  } else {
    Uint16* w = nullptr;
    if (px->getUint16Array(w).good() && w != nullptr) {
      out.assign(reinterpret_cast<const char*>(w), px->getLength());
    } else {
      Uint8* b = nullptr;
      REQUIRE(px->getUint8Array(b).good());
      out.assign(reinterpret_cast<const char*>(b), px->getLength());
    }
  }
  return out;
}

// The data set encoded in `xfer` (for whole-object comparisons).
std::string encode(DcmDataset& ds, E_TransferSyntax xfer) {
  ds.transferInit();
  const auto len = ds.calcElementLength(xfer, EET_ExplicitLength) + 1024;
  std::string buf(len, '\0');
  DcmOutputBufferStream out(buf.data(), buf.size());
  ds.transferInit();
  const OFCondition c = ds.write(out, xfer, EET_ExplicitLength, nullptr);
  ds.transferEnd();
  REQUIRE(c.good());
  void* p = nullptr;
  offile_off_t n = 0;
  out.flushBuffer(p, n);
  return std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
}

// Received files by SOP Instance UID.
std::map<std::string, std::string> received_by_uid(const fs::path& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    auto ff = load(e.path().string());
    m[get(*ff->getDataset(), DCM_SOPInstanceUID)] = e.path().string();
  }
  return m;
}

// DCMTK's storescp as XNAT's receiver (AE XNAT), killed by its PID when the object goes.
struct StoreScp {
  std::uint16_t port = test::free_port();
  fs::path out, log;
  pid_t pid = -1;

  StoreScp(const fs::path& root, const std::string& name, std::vector<std::string> extra) {
    out = root / name;
    log = root / (name + ".log");
    fs::create_directories(out);
    std::vector<std::string> argv = {"storescp", "-v", "-aet", "XNAT", "-od", out.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(std::to_string(port));
    test::SpawnOptions o;
    o.log_path = log.string();
    pid = test::spawn(argv, o);
    const auto t0 = Clock::now();
    const bool refusing = std::find(extra.begin(), extra.end(), "--refuse") != extra.end();
    for (;;) {
      if (refusing) {  // echo cannot succeed: wait until the port listens
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        if (ok) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      } else if (test::echo(port, "XNAT", 2)) {
        break;
      }
      if (seconds_since(t0) > 15)
        throw std::runtime_error("storescp did not start: " + test::file_tail(log.string(), 2000));
    }
  }
  ~StoreScp() { test::stop_pid(pid, 3000); }
  int associations() const {
    std::ifstream in(log);
    std::string line;
    int n = 0;
    while (std::getline(in, line))
      if (line.find("Association Received") != std::string::npos) ++n;
    return n;
  }
  pacs::Peer peer() const { return receiver(port, 5, 10); }
};

// A fake DICOM peer on a free port for one connection: either answers the A-ASSOCIATE-RQ with
// an A-ASSOCIATE-RJ (result/source/reason) or stays silent until destroyed.
struct FakePeer {
  int fd = -1;
  std::uint16_t port = 0;
  std::thread thread;
  std::atomic<bool> stop{false};

  FakePeer(bool reject, std::uint8_t result, std::uint8_t source, std::uint8_t reason) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    port = test::free_port();
    a.sin_port = htons(port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0)
      throw std::runtime_error("fake peer: bind/listen failed");
    thread = std::thread([this, reject, result, source, reason] {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return;
      const int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 5000) > 0) (void)::read(c, buf, sizeof buf);  // the A-ASSOCIATE-RQ
      if (reject) {
        const unsigned char rj[10] = {0x03, 0, 0, 0, 0, 4, 0, result, source, reason};
        (void)::write(c, rj, sizeof rj);
      }
      while (!stop) {  // until the requestor closes (or the test ends)
        pollfd r{c, POLLIN, 0};
        if (::poll(&r, 1, 100) > 0 && ::read(c, buf, sizeof buf) <= 0) break;
      }
      ::close(c);
    });
  }
  ~FakePeer() {
    stop = true;
    thread.join();
    ::close(fd);
  }
  pacs::Peer peer(int acse_s) const { return receiver(port, acse_s, 5); }
};

// One generated study (2 MR series x 3: an Enhanced MR multi-frame instance and an RLE one)
// under a temp root shared by all cases.
struct Env {
  fs::path root;
  test::GeneratedStudy study;
  fs::path study_dir;

  Env() {
    root = fs::temp_directory_path() / ("p2x-store-scu-test-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
    test::StudySpec s;
    s.accession = "DPUSH1";
    s.patient_id = "PDP1";
    s.patient_name = "Push^Dicom";
    s.study_date = "20240301";
    s.series = 2;
    s.instances = 3;
    s.rows = 64;
    s.cols = 64;
    s.multiframe = true;
    s.compressed = true;
    study = test::generate({s}, (root / "src").string()).at(0);
    study_dir = root / "src" / study.study_uid;
  }
  ~Env() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

Env& env() {
  static Env e;
  return e;
}

// A copy of the study into root/name (flat), for cases that add or change files.
fs::path copy_study(const std::string& name) {
  const fs::path dir = env().root / name;
  fs::create_directories(dir);
  for (const auto& f : env().study.files())
    fs::copy_file(f, dir / (fs::path(f).parent_path().filename().string() + "-" +
                            fs::path(f).filename().string()));
  return dir;
}

std::vector<std::string> dcm_files(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".dcm") v.push_back(e.path().string());
  return v;
}

pacs::PacsError send_error(const pacs::Peer& peer, const std::string& dir) {
  try {
    send(peer, dir);
  } catch (const pacs::PacsError& e) {
    return e;
  }
  FAIL("no PacsError thrown");
  throw std::logic_error("unreachable");
}

void check_error(const pacs::PacsError& err, pacs::ErrorKind kind, bool transient,
                 const std::string& text) {
  INFO(err.what());
  CHECK(err.kind() == kind);
  CHECK(err.transient() == transient);
  CHECK(std::string(err.what()).find(text) != std::string::npos);
}

}  // namespace

TEST_CASE("send_study sends the study in one association with routing text and original syntaxes",
          "[store_scu]") {
  Env& e = env();
  const auto files = e.study.files();
  REQUIRE(files.size() == 6);
  // The corpus has the odd cases this test is about.
  bool has_rle = false, has_multiframe = false;
  for (const auto& s : e.study.series)
    for (const auto& f : s.files) {
      has_rle = has_rle || f.transfer_syntax == UID_RLELosslessTransferSyntax;
      has_multiframe = has_multiframe || f.sop_class == UID_EnhancedMRImageStorage;
    }
  REQUIRE(has_rle);
  REQUIRE(has_multiframe);

  const auto before = snapshot(files);
  StoreScp scp(e.root, "recv-all", {"+xa"});
  const int assoc_before = scp.associations();

  const auto r = send(scp.peer(), e.study_dir.string());
  INFO(test::file_tail(scp.log.string(), 3000));
  CHECK(r.failed == 0);
  CHECK(r.failures.empty());
  CHECK(r.sent == 6);
  CHECK(scp.associations() - assoc_before == 1);

  const auto received = received_by_uid(scp.out);
  REQUIRE(received.size() == files.size());
  for (const auto& f : files) {
    auto src = load(f);
    const std::string uid = get(*src->getDataset(), DCM_SOPInstanceUID);
    INFO(f);
    REQUIRE(received.count(uid) == 1);
    auto got = load(received.at(uid));
    DcmDataset& gds = *got->getDataset();
    DcmDataset& sds = *src->getDataset();
    CHECK(get(gds, DCM_PatientComments) == kRouting);
    CHECK(get(*got->getMetaInfo(), DCM_TransferSyntaxUID) ==
          get(*src->getMetaInfo(), DCM_TransferSyntaxUID));
    CHECK(gds.getOriginalXfer() == sds.getOriginalXfer());
    const std::string spx = pixel_bytes(sds);
    CHECK(!spx.empty());
    CHECK(pixel_bytes(gds) == spx);
    // Nothing else changed: the source with the routing text encodes to the same bytes.
    REQUIRE(sds.putAndInsertString(DCM_PatientComments, kRouting).good());
    CHECK(encode(gds, gds.getOriginalXfer()) == encode(sds, sds.getOriginalXfer()));
  }
  CHECK(snapshot(files) == before);  // files on disk untouched
}

TEST_CASE("send_study converts only losslessly and reports unsendable files", "[store_scu]") {
  Env& e = env();
  const fs::path dir = copy_study("mixed");
  const std::string mr_file = e.study.series.at(1).files.at(0).path;  // plain MR, explicit LE
  std::string rle_file;
  for (const auto& f : e.study.series.at(0).files)
    if (f.transfer_syntax == UID_RLELosslessTransferSyntax) rle_file = f.path;
  REQUIRE(!rle_file.empty());

  // A lossy JPEG (new SOP instance UID) and an instance of a SOP class storescp does not know.
  const std::string lossy = (dir / "lossy.dcm").string();
  REQUIRE(test::run({"dcmcjpeg", "+ee", "+ua", mr_file, lossy}, {}, 30000) == 0);
  const std::string unknown = (dir / "unknown-class.dcm").string();
  {
    auto ff = load(mr_file);
    REQUIRE(ff->getDataset()
                ->putAndInsertString(DCM_SOPClassUID, "1.2.826.0.1.3680043.9.9999.1")
                .good());
    REQUIRE(ff->getDataset()
                ->putAndInsertString(DCM_SOPInstanceUID, "1.2.826.0.1.3680043.9.9999.2")
                .good());
    REQUIRE(ff->saveFile(unknown.c_str(), EXS_LittleEndianExplicit).good());
  }
  // A file that is not DICOM, and a hidden temp file that must be ignored.
  { std::ofstream(dir / "garbage.dcm") << "not dicom"; }
  { std::ofstream(dir / ".p2x-x.part.dcm") << "half written"; }
  const auto all = dcm_files(dir);
  const auto before = snapshot(all);

  // storescp's default: uncompressed transfer syntaxes only, known storage SOP classes only.
  StoreScp scp(e.root, "recv-uncompressed", {});
  const auto r = send(scp.peer(), dir.string());
  INFO(test::file_tail(scp.log.string(), 3000));
  std::string failures;
  for (const auto& f : r.failures) failures += f + "\n";
  INFO(failures);
  CHECK(r.sent == 6);
  CHECK(r.failed == 3);
  REQUIRE(r.failures.size() == 3);
  auto failure_for = [&](const std::string& name) {
    for (const auto& f : r.failures)
      if (f.rfind((dir / name).string() + ": ", 0) == 0) return f;
    return std::string();
  };
  CHECK(failure_for("lossy.dcm").find("not be lossless") != std::string::npos);
  CHECK(failure_for("unknown-class.dcm").find("did not accept") != std::string::npos);
  CHECK(failure_for("garbage.dcm").find("not readable") != std::string::npos);

  // The RLE instance arrived uncompressed with the decoded pixel values.
  const auto received = received_by_uid(scp.out);
  CHECK(received.size() == 6);
  auto src = load(rle_file);
  const std::string uid = get(*src->getDataset(), DCM_SOPInstanceUID);
  REQUIRE(received.count(uid) == 1);
  auto got = load(received.at(uid));
  CHECK(DcmXfer(got->getDataset()->getOriginalXfer()).isNotEncapsulated());
  CHECK(get(*got->getDataset(), DCM_PatientComments) == kRouting);
  DcmRLEDecoderRegistration::registerCodecs();
  REQUIRE(src->getDataset()->chooseRepresentation(EXS_LittleEndianExplicit, nullptr).good());
  DcmElement* px = nullptr;
  REQUIRE(src->getDataset()->findAndGetElement(DCM_PixelData, px).good());
  Uint16* w = nullptr;
  REQUIRE(px->getUint16Array(w).good());
  const std::string decoded(reinterpret_cast<const char*>(w), px->getLength());
  CHECK(pixel_bytes(*got->getDataset()) == decoded);

  CHECK(snapshot(all) == before);
}

TEST_CASE("send_study classifies association failures", "[store_scu]") {
  Env& e = env();
  const std::string dir = e.study_dir.string();

  SECTION("closed port: Connect, transient, quickly") {
    const auto t0 = Clock::now();
    const auto err = send_error(receiver(test::free_port(), 5, 5), dir);  // nobody listens
    check_error(err, pacs::ErrorKind::Connect, true, "");
    CHECK(seconds_since(t0) < 3.0);
  }
  SECTION("receiver refusing the association: Rejected, not transient") {
    StoreScp scp(e.root, "recv-refuse", {"--refuse"});
    check_error(send_error(scp.peer(), dir), pacs::ErrorKind::Rejected, false,
                "Rejected Permanent");
  }
  SECTION("called AE title not recognised (permanent rejection): not transient") {
    FakePeer peer(true, 1, 1, 7);
    check_error(send_error(peer.peer(5), dir), pacs::ErrorKind::Rejected, false,
                "Called AE Title Not Recognized");
  }
  SECTION("transient rejection (receiver busy): transient") {
    FakePeer peer(true, 2, 3, 2);
    check_error(send_error(peer.peer(5), dir), pacs::ErrorKind::Rejected, true,
                "Rejected Transient");
  }
  SECTION("silent receiver: transient after the ACSE timeout") {
    FakePeer peer(false, 0, 0, 0);
    const auto t0 = Clock::now();
    check_error(send_error(peer.peer(1), dir), pacs::ErrorKind::Timeout, true, "");
    CHECK(seconds_since(t0) < 5.0);
  }
  SECTION("receiver aborting during the transfer: transient") {
    StoreScp scp(e.root, "recv-abort", {"+xa", "--abort-after"});
    check_error(send_error(scp.peer(), dir), pacs::ErrorKind::Protocol, true, "after 0 of 6 files");
  }
}

TEST_CASE("send_study without files does not connect and a missing directory throws",
          "[store_scu]") {
  const fs::path empty = env().root / "empty";
  fs::create_directories(empty / "sub");
  // Nobody listens: a connection attempt would throw.
  const pacs::Peer nobody = receiver(test::free_port(), 5, 5);
  const auto r = send(nobody, empty.string());
  CHECK(r.sent == 0);
  CHECK(r.failed == 0);
  CHECK_THROWS_AS(send(nobody, (env().root / "nope").string()), std::runtime_error);
}

TEST_CASE("send_study proposes at most 128 presentation contexts", "[store_scu]") {
  // 130 instances of 130 different (private) SOP classes, all explicit little endian: one
  // context each, no fallbacks; the last two classes by path order get none and fail alone.
  // Sent without Patient Comments in the options: the files' own arrive unchanged.
  Env& e = env();
  const fs::path dir = e.root / "many-classes";
  fs::create_directories(dir);
  const std::string mr_file = e.study.series.at(1).files.at(0).path;
  for (int i = 0; i < 130; ++i) {
    auto ff = load(mr_file);
    DcmDataset& ds = *ff->getDataset();
    const std::string n = std::to_string(1000 + i);
    REQUIRE(
        ds.putAndInsertString(DCM_SOPClassUID, ("1.2.826.0.1.3680043.9.7777." + n).c_str()).good());
    REQUIRE(ds.putAndInsertString(DCM_SOPInstanceUID, ("1.2.826.0.1.3680043.9.7778." + n).c_str())
                .good());
    REQUIRE(ds.putAndInsertString(DCM_PatientComments, "own comment").good());
    REQUIRE(ff->saveFile((dir / (n + ".dcm")).string().c_str(), EXS_LittleEndianExplicit).good());
  }
  StoreScp scp(e.root, "recv-promiscuous", {"-pm"});
  const auto r = pacs::Client(scp.peer()).send_study(dir.string(), {});
  INFO(test::file_tail(scp.log.string(), 2000));
  CHECK(r.sent == 128);
  CHECK(r.failed == 2);
  for (const auto& f : r.failures)
    CHECK(f.find("no presentation context left") != std::string::npos);
  const auto received = received_by_uid(scp.out);
  CHECK(received.size() == 128);
  for (const auto& [uid, path] : received) {
    INFO(uid);
    CHECK(get(*load(path)->getDataset(), DCM_PatientComments) == "own comment");
  }
}
