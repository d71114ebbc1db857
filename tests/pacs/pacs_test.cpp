// lib/pacs against real PACSes (Orthanc and dcmqrscp started by the test fixtures): C-ECHO,
// C-FIND at all levels, C-MOVE into our Storage SCP and C-GET, byte-compared with the source
// files; error classification, refusal of unexpected studies, idle abort.
// One process for all cases (the PACSes are started once): run `pacs_test`.
#include "pacs/association.hpp"
#include "pacs/pacs.hpp"
#include "pacs/retrieval.hpp"
#include "support/counting_proxy.hpp"
#include "support/pacs_fixture.hpp"
#include "support/process.hpp"
#include "support/testdata.hpp"
#include "support/wait.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <thread>

namespace fs = std::filesystem;
using namespace p2x;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kOurAe = "P2XPACSTEST";
constexpr const char* kHoleAe = "P2XHOLE";  // move destination that never answers

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A listening socket that never accepts: connections hang in the backlog.
struct BlackHole {
  int fd = -1;
  std::uint16_t port = 0;
  BlackHole() {
    port = test::free_port();
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0)
      throw std::runtime_error("black hole: bind/listen failed");
  }
  ~BlackHole() { ::close(fd); }
};

struct Env {
  fs::path root;
  std::vector<test::GeneratedStudy> studies;
  std::uint16_t scp_port = 0;
  BlackHole hole;
  std::unique_ptr<test::PacsFixture> orthanc, dcmqrscp;
  std::unique_ptr<pacs::StorageScp> scp;
  int dir_counter = 0;

  Env() {
    pacs::init_network();
    root = fs::temp_directory_path() / ("p2x-pacs-test-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
    studies = test::generate(test::standard_corpus(), (root / "src").string());
    std::vector<std::string> files;
    for (const auto& s : studies)
      for (const auto& f : s.files()) files.push_back(f);
    scp_port = test::free_port();
    const std::vector<test::MoveDestination> dests = {{kOurAe, scp_port}, {kHoleAe, hole.port}};
    orthanc = std::make_unique<test::PacsFixture>(test::PacsKind::Orthanc,
                                                  (root / "orthanc").string(), dests);
    dcmqrscp = std::make_unique<test::PacsFixture>(test::PacsKind::Dcmqrscp,
                                                   (root / "dcmqrscp").string(), dests);
    orthanc->start();
    dcmqrscp->start();
    orthanc->load(files);
    dcmqrscp->load(files);
    pacs::ScpOptions opts;
    opts.staging_dir = (root / "staging").string();
    // Associations held idle by a case below keep their slots (no probation take-over
    // within a test's time: that is scp_guard_test's subject), so "full" stays full.
    opts.fresh_grace_ms = 600000;
    scp = std::make_unique<pacs::StorageScp>(kOurAe, scp_port, 4, opts);
    scp->start();
  }
  ~Env() {
    scp.reset();
    orthanc.reset();
    dcmqrscp.reset();
    std::error_code ec;
    if (std::getenv("P2X_KEEP_TEST_DIR") == nullptr) fs::remove_all(root, ec);
  }

  static Env& get() {
    static Env env;
    return env;
  }

  test::PacsFixture& fixture(test::PacsKind kind) {
    return kind == test::PacsKind::Orthanc ? *orthanc : *dcmqrscp;
  }

  pacs::Peer peer(test::PacsKind kind, const std::string& our_ae = kOurAe) {
    auto& f = fixture(kind);
    pacs::Peer p;
    p.ae_title = f.ae_title();
    p.host = "127.0.0.1";
    p.port = f.port();
    p.our_ae = our_ae;
    p.timeouts.connect_s = 3;
    p.timeouts.acse_s = 5;
    p.timeouts.dimse_s = 20;
    p.timeouts.idle_s = 20;
    return p;
  }

  const test::GeneratedStudy& study(const std::string& accession, const std::string& patient = "") {
    for (const auto& s : studies)
      if (s.spec.accession == accession && (patient.empty() || s.spec.patient_id == patient))
        return s;
    throw std::runtime_error("no study " + accession);
  }

  std::string new_dir(const std::string& tag) {
    return (root / "out" / (tag + "-" + std::to_string(++dir_counter))).string();
  }
};

const test::PacsKind kKinds[] = {test::PacsKind::Orthanc, test::PacsKind::Dcmqrscp};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The data set part of a Part 10 file (after preamble, "DICM" and the meta group, whose
// length is in (0002,0000)); and the meta transfer syntax UID.
std::string data_set_bytes(const std::string& file, std::string* ts = nullptr) {
  const std::string b = read_bytes(file);
  REQUIRE(b.size() > 144);
  REQUIRE(b.substr(128, 4) == "DICM");
  REQUIRE(b.substr(132, 4) == std::string("\x02\x00\x00\x00", 4));
  std::uint32_t glen = 0;
  std::memcpy(&glen, b.data() + 140, 4);
  const std::size_t start = 144 + glen;
  if (ts != nullptr) {
    const std::string meta = b.substr(144, glen);
    const std::string tag("\x02\x00\x10\x00UI", 6);
    const auto pos = meta.find(tag);
    REQUIRE(pos != std::string::npos);
    std::uint16_t len = 0;
    std::memcpy(&len, meta.data() + pos + 6, 2);
    *ts = meta.substr(pos + 8, len);
    while (!ts->empty() && (ts->back() == '\0' || ts->back() == ' ')) ts->pop_back();
  }
  return b.substr(start);
}

// Data set re-encoded in one fixed way (explicit-length sequences, no group lengths).
std::string canonical(const std::string& file) {
  DcmFileFormat ff;
  REQUIRE(ff.loadFile(file.c_str()).good());
  const std::string tmp = file + ".canonical";
  REQUIRE(ff.saveFile(tmp.c_str(), EXS_Unknown, EET_ExplicitLength, EGL_withoutGL).good());
  const std::string out = data_set_bytes(tmp);
  fs::remove(tmp);
  return out;
}

// Every expected source file has an identical received copy named <sop>.dcm in dir, and dir
// holds nothing else (no temp files left).
void check_received(const std::string& dir, const std::vector<test::GeneratedFile>& expected) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  std::set<std::string> want;
  for (const auto& f : expected) want.insert(f.sop_uid + ".dcm");
  CHECK(names == want);
  for (const auto& f : expected) {
    const std::string got = dir + "/" + f.sop_uid + ".dcm";
    if (!fs::exists(got)) continue;
    std::string ts_src, ts_got;
    const std::string src = data_set_bytes(f.path, &ts_src);
    const std::string dst = data_set_bytes(got, &ts_got);
    INFO("instance " << f.sop_uid << " (" << f.sop_class << ", " << f.transfer_syntax << ")");
    CHECK(ts_got == ts_src);
    if (dst != src) {
      // Loading the PACS (storescu) already re-encodes sequences with explicit lengths:
      // compare a canonical encoding of both (all values, pixel data included).
      CHECK(canonical(got) == canonical(f.path));
    }
  }
}

std::vector<test::GeneratedFile> files_of(const test::GeneratedStudy& s) {
  std::vector<test::GeneratedFile> out;
  for (const auto& series : s.series)
    for (const auto& f : series.files) out.push_back(f);
  return out;
}

// What a PACS can deliver: dcmqrscp cannot send RLE instances (it proposes uncompressed only
// and cannot transcode; see tests/support/pacs_fixture.cpp), they fail as sub-operations.
std::vector<test::GeneratedFile> deliverable(test::PacsKind kind, const test::GeneratedStudy& s) {
  std::vector<test::GeneratedFile> out;
  for (const auto& f : files_of(s))
    if (kind == test::PacsKind::Orthanc || f.transfer_syntax != UID_RLELosslessTransferSyntax)
      out.push_back(f);
  return out;
}

pacs::Peer scp_peer(std::uint16_t port, const std::string& called, const std::string& calling) {
  pacs::Peer p;
  p.ae_title = called;
  p.host = "127.0.0.1";
  p.port = port;
  p.our_ae = calling;
  p.timeouts.connect_s = 3;
  p.timeouts.acse_s = 5;
  p.timeouts.dimse_s = 10;
  return p;
}

std::vector<pacs::detail::ContextRequest> verification_context() {
  return {{UID_VerificationSOPClass, pacs::detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}};
}

// A raw TCP connection to our SCP (from `source`, another loopback address if wanted) that
// sends `bytes` (maybe nothing) and then stays silent.
struct RawPeer {
  int fd = -1;
  RawPeer(std::uint16_t port, const std::string& bytes = "", const char* source = nullptr) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (source != nullptr) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &from.sin_addr);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0)
        throw std::runtime_error("raw peer: bind to source failed");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("raw peer: connect failed");
    if (!bytes.empty() && ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) < 0)
      throw std::runtime_error("raw peer: send failed");
  }
  ~RawPeer() { ::close(fd); }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  // Whether the SCP closed the connection within timeout_ms (what it sent is skipped).
  bool closed_within(int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[512];
    while (Clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
    return false;
  }
};

// C-STOREs `files` on one association (DcmSCU) with a Move Originator when originator_ae is
// not empty; the status of each (0xFFFF: not sent, e.g. the association was aborted).
std::vector<Uint16> store_files(std::uint16_t port, const std::string& called,
                                const std::string& calling, const std::vector<std::string>& files,
                                const std::string& originator_ae = "", Uint16 originator_id = 0) {
  DcmSCU scu;
  scu.setAETitle(calling.c_str());
  scu.setPeerAETitle(called.c_str());
  scu.setPeerHostName("127.0.0.1");
  scu.setPeerPort(port);
  scu.setACSETimeout(5);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setDIMSETimeout(10);
  std::set<std::pair<std::string, std::string>> proposed;
  std::vector<std::pair<std::string, std::string>> kinds;
  for (const auto& f : files) {
    DcmFileFormat ff;
    REQUIRE(ff.loadFile(f.c_str()).good());
    OFString cls, ts;
    ff.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, cls);
    ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
    kinds.emplace_back(cls.c_str(), ts.c_str());
    if (proposed.insert(kinds.back()).second) {
      OFList<OFString> syntaxes;
      syntaxes.push_back(ts);
      scu.addPresentationContext(cls, syntaxes);
    }
  }
  REQUIRE(scu.initNetwork().good());
  REQUIRE(scu.negotiateAssociation().good());
  std::vector<Uint16> statuses;
  for (std::size_t i = 0; i < files.size(); ++i) {
    Uint16 status = 0xFFFF;
    const auto pres =
        scu.findPresentationContextID(kinds[i].first.c_str(), kinds[i].second.c_str());
    if (!scu.isConnected() || scu.sendSTORERequest(pres, files[i].c_str(), nullptr, status,
                                                   originator_ae.c_str(), originator_id)
                                  .bad())
      status = 0xFFFF;
    statuses.push_back(status);
  }
  if (scu.isConnected()) scu.releaseAssociation();
  return statuses;
}

std::size_t count_entries(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("C-ECHO against Orthanc and dcmqrscp", "[pacs]") {
  auto& env = Env::get();
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    pacs::Client client(env.peer(kind));
    const double s = client.echo();
    CHECK(s > 0.0);
    CHECK(s < 2.0);
  }
}

TEST_CASE("C-FIND studies by accession - patient + date - UID - unknown -> none", "[pacs]") {
  auto& env = Env::get();
  const auto& std001 = env.study("STD001");
  const auto& no_acc = env.study("", "PSTD04");
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    pacs::Client client(env.peer(kind));

    pacs::Query q;
    q.accession = "STD001";
    auto m = client.find_studies(q);
    REQUIRE(m.size() == 1);
    CHECK(m[0].study_uid == std001.study_uid);
    CHECK(m[0].patient_id == "PSTD01");
    CHECK(m[0].patient_name == "Alpha^Anna");
    CHECK(m[0].study_date == "20240110");
    if (m[0].instances >= 0) CHECK(m[0].instances == std001.instance_count());

    pacs::Query by_patient;
    by_patient.patient_id = "PSTD04";
    by_patient.study_date = "20240113";
    m = client.find_studies(by_patient);
    REQUIRE(m.size() == 1);
    CHECK(m[0].study_uid == no_acc.study_uid);
    CHECK(m[0].accession.empty());

    // Two studies of one patient on one date; the modality filter picks one.
    pacs::Query two;
    two.patient_id = "PSTD05";
    two.study_date = "20240114";
    CHECK(client.find_studies(two).size() == 2);
    two.modality = "CT";
    m = client.find_studies(two);
    REQUIRE(m.size() == 1);
    CHECK(m[0].accession == "STD006");

    pacs::Query by_uid;
    by_uid.study_uid = std001.study_uid;
    m = client.find_studies(by_uid);
    REQUIRE(m.size() == 1);
    CHECK(m[0].accession == "STD001");

    pacs::Query unknown;
    unknown.accession = "NO-SUCH-ACC";
    CHECK(client.find_studies(unknown).empty());
    pacs::Query unknown_uid;
    unknown_uid.study_uid = "1.2.3.4.5.6.7.8.9";
    CHECK(client.find_studies(unknown_uid).empty());
  }
}

TEST_CASE("C-FIND series with expected counts - and instances with SOP classes", "[pacs]") {
  auto& env = Env::get();
  for (const char* acc : {"STD001", "STD007"}) {
    const auto& study = env.study(acc);
    for (auto kind : kKinds) {
      INFO(test::to_string(kind) << " " << acc);
      pacs::Client client(env.peer(kind));
      const auto series = client.find_series(study.study_uid);
      REQUIRE(series.size() == study.series.size());
      for (const auto& gs : study.series) {
        const auto it = std::find_if(series.begin(), series.end(),
                                     [&](const auto& s) { return s.series_uid == gs.uid; });
        REQUIRE(it != series.end());
        CHECK(it->expected == static_cast<int>(gs.files.size()));
        CHECK(it->modality == gs.modality);
        CHECK(it->number == gs.number);
        const auto inst = client.find_instances(study.study_uid, gs.uid);
        REQUIRE(inst.size() == gs.files.size());
        std::map<std::string, std::string> want;
        for (const auto& f : gs.files) want[f.sop_uid] = f.sop_class;
        for (const auto& i : inst) {
          REQUIRE(want.count(i.sop_uid) == 1);
          // dcmqrscp does not return SOPClassUID at IMAGE level (empty = unknown).
          if (kind == test::PacsKind::Orthanc || !i.sop_class.empty())
            CHECK(want[i.sop_uid] == i.sop_class);
        }
      }
    }
  }
}

TEST_CASE(
    "Session: a row's C-FINDs and its C-MOVE or C-GET share one association - a new one after a "
    "drop",
    "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD001");
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    test::CountingProxy proxy(env.fixture(kind).port());
    pacs::Peer peer = env.peer(kind);
    peer.port = proxy.port();
    pacs::Client client(peer);
    {
      pacs::Session finds(client);
      pacs::Query q;
      q.accession = "STD001";
      const auto m = finds.find_studies(q);
      REQUIRE(m.size() == 1);
      const auto series = finds.find_series(m[0].study_uid);
      REQUIRE(series.size() == study.series.size());
      CHECK(finds.find_instances(m[0].study_uid, series[0].series_uid).size() ==
            static_cast<std::size_t>(series[0].expected));
      // Then the study's C-MOVE, still on the same association.
      const auto want = deliverable(kind, study);
      const auto dir = env.new_dir("session-move");
      auto route = env.scp->expect(study.study_uid, dir, {env.fixture(kind).ae_title()});
      const auto r = finds.move({study.study_uid, {}, {}});
      CHECK(r.completed == static_cast<int>(want.size()));
      CHECK(route->received() == static_cast<int>(want.size()));
      check_received(dir, want);
      finds.close();
    }
    CHECK(proxy.total_connections() == 1);
    CHECK(proxy.wait_current(0, 5000));

    // A C-GET session: the C-FINDs and the C-GET on one association too.
    proxy.reset_counts();
    {
      pacs::Session gets(client, true);
      pacs::Query q;
      q.accession = "STD001";
      const auto m = gets.find_studies(q);
      REQUIRE(m.size() == 1);
      REQUIRE(gets.find_series(m[0].study_uid).size() == study.series.size());
      const auto want = deliverable(kind, study);
      const auto dir = env.new_dir("session-get");
      const auto r = gets.get({study.study_uid, {}, {}}, dir);
      CHECK(r.received == static_cast<int>(want.size()));
      check_received(dir, want);
      gets.close();
    }
    CHECK(proxy.total_connections() == 1);
    CHECK(proxy.wait_current(0, 5000));

    // Without any key the query is refused before any association. When the connection
    // drops under an open session, that query fails and the next one opens a new association.
    proxy.reset_counts();
    pacs::Session finds(client);
    CHECK_THROWS_AS(finds.find_studies(pacs::Query{}), std::invalid_argument);
    CHECK(proxy.total_connections() == 0);
    pacs::Query q;
    q.study_uid = study.study_uid;
    REQUIRE(finds.find_studies(q).size() == 1);
    proxy.drop_all();
    CHECK_THROWS_AS(finds.find_studies(q), pacs::PacsError);
    CHECK(finds.find_studies(q).size() == 1);
    finds.close();
    CHECK(proxy.total_connections() == 2);
  }
}

TEST_CASE("C-MOVE whole studies into the Storage SCP - byte-identical", "[pacs]") {
  auto& env = Env::get();
  for (auto kind : kKinds) {
    for (const char* acc : {"STD001", "STD002", "STD003", "STD007"}) {
      INFO(test::to_string(kind) << " " << acc);
      const auto& study = env.study(acc);
      const auto want = deliverable(kind, study);
      const int n = static_cast<int>(want.size());
      const int undeliverable = study.instance_count() - n;
      const auto dir = env.new_dir("move");
      auto route = env.scp->expect(study.study_uid, dir, {env.fixture(kind).ae_title()});
      pacs::Client client(env.peer(kind));
      int progress_calls = 0;
      const auto r =
          client.move({study.study_uid, {}, {}}, [&](const pacs::Progress&) { ++progress_calls; });
      // A failed sub-operation is reported (warning status), not thrown.
      CHECK(r.status == (undeliverable == 0 ? 0x0000 : 0xB000));
      CHECK(r.completed == n);
      CHECK(r.failed == undeliverable);
      CHECK(progress_calls >= 1);
      CHECK(route->received() == n);
      CHECK(route->files().size() == static_cast<std::size_t>(n));
      CHECK(route->bytes() > 0);
      check_received(dir, want);
    }
  }
}

TEST_CASE("C-GET whole studies - byte-identical", "[pacs]") {
  auto& env = Env::get();
  for (auto kind : kKinds) {
    for (const char* acc : {"STD001", "STD002", "STD003", "STD007"}) {
      INFO(test::to_string(kind) << " " << acc);
      const auto& study = env.study(acc);
      const auto want = deliverable(kind, study);
      const int n = static_cast<int>(want.size());
      const auto dir = env.new_dir("get");
      pacs::Client client(env.peer(kind));
      int last_received = 0;
      const auto r = client.get({study.study_uid, {}, {}}, dir, {},
                                [&](const pacs::Progress& p) { last_received = p.received; });
      CHECK(r.status == (n == study.instance_count() ? 0x0000 : 0xB000));
      CHECK(r.failed == study.instance_count() - n);
      CHECK(r.received == n);
      CHECK(last_received == n);
      check_received(dir, want);
    }
  }
}

TEST_CASE("C-GET negotiating the study's own SOP classes", "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD001");
  std::vector<std::string> classes;
  for (const auto& f : files_of(study)) classes.push_back(f.sop_class);
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    const auto dir = env.new_dir("get-classes");
    pacs::Client client(env.peer(kind));
    const auto r = client.get({study.study_uid, {}, {}}, dir, classes);
    const auto want = deliverable(kind, study);
    CHECK(r.received == static_cast<int>(want.size()));
    check_received(dir, want);
  }
}

TEST_CASE("Move one series only - and selected instances only", "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD002");
  REQUIRE(study.series.size() == 2);
  const auto& s2 = study.series[1];
  const auto& s1 = study.series[0];
  REQUIRE(s1.files.size() >= 3);
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    pacs::Client client(env.peer(kind));
    {
      const auto dir = env.new_dir("series");
      auto route = env.scp->expect(study.study_uid, dir, {env.fixture(kind).ae_title()});
      const auto r = client.move({study.study_uid, {s2.uid}, {}});
      CHECK(r.completed == static_cast<int>(s2.files.size()));
      check_received(dir, s2.files);
    }
    {
      const auto dir = env.new_dir("instances");
      auto route = env.scp->expect(study.study_uid, dir, {env.fixture(kind).ae_title()});
      const std::vector<test::GeneratedFile> chosen = {s1.files[0], s1.files[2]};
      const auto r =
          client.move({study.study_uid, {s1.uid}, {chosen[0].sop_uid, chosen[1].sop_uid}});
      CHECK(r.completed == 2);
      check_received(dir, chosen);
    }
    {
      const auto dir = env.new_dir("get-instances");
      const std::vector<test::GeneratedFile> chosen = {s1.files[1]};
      const auto r = client.get({study.study_uid, {s1.uid}, {chosen[0].sop_uid}}, dir);
      CHECK(r.received == 1);
      check_received(dir, chosen);
    }
  }
}

TEST_CASE("A re-sent identical instance is kept once", "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD005");
  const auto dir = env.new_dir("twice");
  auto route = env.scp->expect(study.study_uid, dir, {env.dcmqrscp->ae_title()});
  pacs::Client client(env.peer(test::PacsKind::Dcmqrscp));
  client.move({study.study_uid, {}, {}});
  client.move({study.study_uid, {}, {}});
  CHECK(route->received() == study.instance_count());
  check_received(dir, files_of(study));
  CHECK(route->quarantined() == 0);
  CHECK_FALSE(fs::exists(pacs::quarantine_dir_for(dir)));
}

TEST_CASE("Instances of a study nobody expects are refused and counted", "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD006");
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    const auto before = env.scp->refused();
    pacs::Client client(env.peer(kind));
    try {
      const auto r = client.move({study.study_uid, {}, {}});
      CHECK(r.status != 0);
      CHECK(r.failed == study.instance_count());
      CHECK(r.completed == 0);
    } catch (const pacs::PacsError& e) {
      // Also acceptable: a failure status without sub-operation counts.
      CHECK(e.kind() == pacs::ErrorKind::Failed);
    }
    // dcmqrscp tries every instance; Orthanc gives up at the first refused one.
    const auto refused = env.scp->refused() - before;
    if (kind == test::PacsKind::Dcmqrscp) {
      CHECK(refused == static_cast<std::uint64_t>(study.instance_count()));
    } else {
      CHECK(refused >= 1);
    }
  }
  // Nothing left behind in the staging directory.
  std::size_t staged = 0;
  for (const auto& e : fs::directory_iterator(env.root / "staging")) {
    (void)e;
    ++staged;
  }
  CHECK(staged == 0);
}

TEST_CASE("Connection refused is a quick transient Connect error", "[pacs]") {
  auto& env = Env::get();
  auto peer = env.peer(test::PacsKind::Orthanc);
  peer.port = test::free_port();  // nothing listens there
  pacs::Client client(peer);
  const auto t0 = Clock::now();
  try {
    client.echo();
    FAIL("echo to a closed port succeeded");
  } catch (const pacs::PacsError& e) {
    CHECK(e.kind() == pacs::ErrorKind::Connect);
    CHECK(e.transient());
    CHECK(std::string(e.what()).find(std::to_string(peer.port)) != std::string::npos);
  }
  CHECK(seconds_since(t0) < 1.0);
}

TEST_CASE("No association answer is a Timeout after acse_s", "[pacs]") {
  auto& env = Env::get();
  auto peer = env.peer(test::PacsKind::Orthanc);
  peer.port = env.hole.port;
  peer.timeouts.acse_s = 1;
  pacs::Client client(peer);
  const auto t0 = Clock::now();
  try {
    client.echo();
    FAIL("echo to a black hole succeeded");
  } catch (const pacs::PacsError& e) {
    INFO(e.what());
    CHECK(e.kind() == pacs::ErrorKind::Timeout);
    CHECK(e.transient());
  }
  CHECK(seconds_since(t0) < 4.0);
}

TEST_CASE("Storage SCP: wrong called AE rejected - echo answered - port taken", "[pacs]") {
  auto& env = Env::get();
  pacs::Peer ours;
  ours.ae_title = kOurAe;
  ours.host = "127.0.0.1";
  ours.port = env.scp_port;
  ours.our_ae = "SOMEONE";
  CHECK(pacs::Client(ours).echo() > 0);

  ours.ae_title = "NOT-OUR-AE";
  try {
    pacs::Client(ours).echo();
    FAIL("association with a wrong called AE accepted");
  } catch (const pacs::PacsError& e) {
    CHECK(e.kind() == pacs::ErrorKind::Rejected);
    CHECK_FALSE(e.transient());
  }

  pacs::StorageScp second("OTHER", env.scp_port, 1);
  try {
    second.start();
    FAIL("second SCP on a taken port started");
  } catch (const pacs::PacsError& e) {
    CHECK(e.kind() == pacs::ErrorKind::Connect);
    CHECK(std::string(e.what()).find(std::to_string(env.scp_port)) != std::string::npos);
  }
}

TEST_CASE("TCP_NODELAY: small C-FIND round trips do not wait for delayed ACKs", "[pacs]") {
  auto& env = Env::get();
  pacs::Client client(env.peer(test::PacsKind::Dcmqrscp));
  pacs::Query q;
  q.accession = "STD002";
  client.find_studies(q);  // warm-up
  const int n = 10;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) REQUIRE(client.find_studies(q).size() == 1);
  const double per_call = seconds_since(t0) / n;
  INFO("per C-FIND association: " << per_call * 1000 << " ms");
  // With Nagle on, the identifier PDV after the command PDV waits ~40 ms for an ACK.
  CHECK(per_call < 0.035);
}

TEST_CASE("Two retrievals at once land in their own routes", "[pacs]") {
  auto& env = Env::get();
  const auto& a = env.study("STD002");
  const auto& b = env.study("STD007");
  const auto dir_a = env.new_dir("concurrent-a");
  const auto dir_b = env.new_dir("concurrent-b");
  auto route_a = env.scp->expect(a.study_uid, dir_a, {env.orthanc->ae_title()});
  auto route_b = env.scp->expect(b.study_uid, dir_b, {env.dcmqrscp->ae_title()});
  pacs::RetrieveResult ra, rb;
  std::thread ta([&] {
    ra = pacs::Client(env.peer(test::PacsKind::Orthanc)).move({a.study_uid, {}, {}});
  });
  std::thread tb([&] {
    rb = pacs::Client(env.peer(test::PacsKind::Dcmqrscp)).move({b.study_uid, {}, {}});
  });
  ta.join();
  tb.join();
  CHECK(ra.completed == a.instance_count());
  CHECK(rb.completed == b.instance_count());
  route_a->sync();
  route_b->sync();
  check_received(dir_a, files_of(a));
  check_received(dir_b, files_of(b));
}

TEST_CASE("Instances without Move Originator are routed by StudyInstanceUID", "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD005");
  // Staging on another filesystem (tmpfs) when available: exercises the copy fallback.
  const fs::path staging =
      fs::exists("/dev/shm") ? fs::path("/dev/shm") / ("p2x-staging-" + std::to_string(::getpid()))
                             : env.root / "staging2";
  pacs::ScpOptions opts;
  opts.staging_dir = staging.string();
  opts.fsync_each_file = true;  // the strict mode
  const auto port = test::free_port();
  pacs::StorageScp scp("P2XSTORE", port, 2, opts);
  scp.start();
  const auto dir = env.new_dir("storescu");
  auto route = scp.expect(study.study_uid, dir, {"SENDER"});
  std::vector<std::string> argv = {
      "storescu", "-aet", "SENDER", "-aec", "P2XSTORE", "127.0.0.1", std::to_string(port)};
  for (const auto& f : study.files()) argv.push_back(f);
  test::SpawnOptions so;
  so.log_path = (env.root / "storescu.log").string();
  CHECK(test::run(argv, so, 30000) == 0);
  CHECK(route->received() == study.instance_count());
  check_received(dir, files_of(study));
  std::size_t left = 0;
  for (const auto& e : fs::directory_iterator(staging)) {
    (void)e;
    ++left;
  }
  CHECK(left == 0);
  route.reset();
  scp.stop();
  fs::remove_all(staging);
}

TEST_CASE("Storage SCP: association limit - prompt stop with an open association", "[pacs]") {
  const auto port = test::free_port();
  pacs::ScpOptions opts;
  opts.staging_dir = (Env::get().root / "staging-limit").string();
  pacs::StorageScp scp("P2XLIMIT", port, 1, opts);
  scp.start();
  pacs::Peer peer;
  peer.ae_title = "P2XLIMIT";
  peer.host = "127.0.0.1";
  peer.port = port;
  peer.our_ae = "TESTER";
  {
    // Hold one association open (idle), then ask for a second one.
    pacs::detail::Association held(
        peer,
        {{UID_VerificationSOPClass, pacs::detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}},
        "hold");
    try {
      pacs::Client(peer).echo();
      FAIL("second association accepted beyond the limit");
    } catch (const pacs::PacsError& e) {
      CHECK(e.kind() == pacs::ErrorKind::Rejected);
      CHECK(e.transient());
    }
    const auto t0 = Clock::now();
    scp.stop();
    CHECK(seconds_since(t0) < 2.5);
    held.drop();
  }
  // And it can start again on the same port.
  scp.start();
  CHECK(pacs::Client(peer).echo() > 0);
  scp.stop();
}

TEST_CASE("C-MOVE to a destination the PACS does not know fails naming the destination", "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD005");
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    pacs::Client client(env.peer(kind, "P2XUNKNOWN"));
    try {
      client.move({study.study_uid, {}, {}});
      FAIL("move to an unknown destination succeeded");
    } catch (const pacs::PacsError& e) {
      INFO(e.what());
      CHECK(e.kind() == pacs::ErrorKind::Failed);
      CHECK(std::string(e.what()).find("P2XUNKNOWN") != std::string::npos);
      // dcmqrscp says so (0xA801: permanent); Orthanc answers 0xC000 without a comment,
      // as when it cannot reach a known destination: retried, transient.
      CHECK(e.transient() == (kind == test::PacsKind::Orthanc));
    }
  }
}

TEST_CASE(
    "C-MOVE while our Storage SCP is full: Orthanc's 0xC000 is a transient error saying the PACS "
    "could not deliver",
    "[pacs][scp]") {
  auto& env = Env::get();
  const auto& study = env.study("STD005");
  // Env's SCP takes 4 associations: hold them all.
  std::vector<std::unique_ptr<pacs::detail::Association>> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(std::make_unique<pacs::detail::Association>(
        scp_peer(env.scp_port, kOurAe, "HOLDER"), verification_context(), "hold"));
  const auto dir = env.new_dir("full");
  auto route =
      env.scp->expect(study.study_uid, dir, {env.orthanc->ae_title(), env.dcmqrscp->ae_title()});
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    const auto busy_before = env.scp->counters().rejected_busy;
    try {
      // dcmqrscp counts every instance as a failed sub-operation (0xA702): a result the
      // pipeline judges (nothing arrived: fetched again).
      const auto r = pacs::Client(env.peer(kind)).move({study.study_uid, {}, {}});
      CHECK(kind == test::PacsKind::Dcmqrscp);
      CHECK(r.completed == 0);
      CHECK(r.failed == study.instance_count());
    } catch (const pacs::PacsError& e) {
      // Orthanc: 0xC000 without sub-operations.
      INFO(e.what());
      CHECK(kind == test::PacsKind::Orthanc);
      CHECK(e.kind() == pacs::ErrorKind::Failed);
      CHECK(e.transient());
      CHECK(std::string(e.what()).find("could not deliver to " + std::string(kOurAe)) !=
            std::string::npos);
    }
    CHECK(env.scp->counters().rejected_busy > busy_before);
  }
  // Once a slot is free the same move succeeds.
  held.pop_back();
  // Released by us; the SCP's thread for it then ends its slot.
  REQUIRE(test::wait_until([&] { return env.scp->counters().open_associations == 3; },
                           std::chrono::seconds(10)));
  const auto r = pacs::Client(env.peer(test::PacsKind::Orthanc)).move({study.study_uid, {}, {}});
  CHECK(r.completed == study.instance_count());
  CHECK(route->received() == study.instance_count());
}

TEST_CASE(
    "DimsePacs: a C-MOVE our full Storage SCP turned away says so - ReceiverBusy "
    "(Orthanc's 0xC000), receiver_busy beside dcmqrscp's failed sub-operations",
    "[pacs][scp]") {
  auto& env = Env::get();
  const auto& study = env.study("STD005");
  // Env's SCP takes 4 associations: hold them all (not evictable here: see Env).
  std::vector<std::unique_ptr<pacs::detail::Association>> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(std::make_unique<pacs::detail::Association>(
        scp_peer(env.scp_port, kOurAe, "HOLDER"), verification_context(), "hold"));
  pacs::DimsePacs dimse(env.scp.get());
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    auto retrieval = dimse.open(env.peer(kind), pacs::RetrieveMethod::Move);
    const auto dir = env.new_dir(std::string("busy-") + test::to_string(kind));
    try {
      const auto r = retrieval->fetch({{study.study_uid, {}, {}}}, dir, nullptr);
      CHECK(kind == test::PacsKind::Dcmqrscp);
      CHECK(r.failed == study.instance_count());
      CHECK(r.receiver_busy >= 1);
    } catch (const pacs::PacsError& e) {
      INFO(e.what());
      CHECK(kind == test::PacsKind::Orthanc);
      CHECK(e.kind() == pacs::ErrorKind::ReceiverBusy);
      CHECK(e.transient());
      CHECK(std::string(e.what()).find("our Storage SCP had no free association") !=
            std::string::npos);
    }
    retrieval->close();
  }
}

// An SCP of its own per case below (options differ), staging under the test root.
struct DoorScp {
  std::uint16_t port = test::free_port();
  fs::path staging;
  std::unique_ptr<pacs::StorageScp> scp;
  DoorScp(const std::string& ae, int max_associations, pacs::ScpOptions opts) {
    staging = Env::get().root / ("staging-" + ae);
    opts.staging_dir = staging.string();
    scp = std::make_unique<pacs::StorageScp>(ae, port, max_associations, opts);
    scp->start();
  }
};

TEST_CASE("Storage SCP: silent, slow or foreign connections never delay another association",
          "[pacs][scp]") {
  pacs::ScpOptions opts;
  opts.request_s = 2;
  opts.max_pending_per_peer = 4;
  DoorScp door("P2XDOOR", 4, opts);
  const auto peer = scp_peer(door.port, "P2XDOOR", "TESTER");
  // From another address: three that send nothing, one that begins a PDU header and stops.
  std::vector<std::unique_ptr<RawPeer>> silent;
  for (int i = 0; i < 3; ++i)
    silent.push_back(std::make_unique<RawPeer>(door.port, "", "127.0.0.2"));
  silent.push_back(
      std::make_unique<RawPeer>(door.port, std::string("\x01\x00\x00\x00", 4), "127.0.0.2"));
  // All four accepted and waiting for their request.
  REQUIRE(test::wait_until([&] { return door.scp->counters().waiting_connections == 4; },
                           std::chrono::seconds(10)));
  auto t0 = Clock::now();
  CHECK(pacs::Client(peer).echo() > 0);
  CHECK(seconds_since(t0) < 1.0);
  // A fifth from that address is beyond max_pending_per_peer: closed at once.
  RawPeer extra(door.port, "", "127.0.0.2");
  CHECK(extra.closed_within(1000));
  // Not DICOM at all, or an empty A-ASSOCIATE-RQ: closed at once.
  RawPeer http(door.port, "GET / HTTP/1.0\r\n\r\n", "127.0.0.3");
  CHECK(http.closed_within(1000));
  RawPeer empty(door.port, std::string("\x01\x00\x00\x00\x00\x00", 6), "127.0.0.3");
  CHECK(empty.closed_within(1000));
  t0 = Clock::now();
  CHECK(pacs::Client(peer).echo() > 0);
  CHECK(seconds_since(t0) < 1.0);
  // The waiting ones are closed after request_s.
  for (auto& s : silent) CHECK(s->closed_within(3000));
  CHECK(door.scp->counters().dropped == 7);
  const auto t1 = Clock::now();
  door.scp->stop();
  CHECK(seconds_since(t1) < 1.5);
}

TEST_CASE("Storage SCP: a large A-ASSOCIATE-RQ (128 contexts x 30 transfer syntaxes) is accepted",
          "[pacs][scp]") {
  DoorScp door("P2XBIGRQ", 2, {});
  const std::vector<std::string> syntaxes = {UID_LittleEndianExplicitTransferSyntax,
                                             UID_LittleEndianImplicitTransferSyntax,
                                             UID_BigEndianExplicitTransferSyntax,
                                             UID_DeflatedExplicitVRLittleEndianTransferSyntax,
                                             UID_JPEGProcess1TransferSyntax,
                                             UID_JPEGProcess2_4TransferSyntax,
                                             UID_JPEGProcess3_5TransferSyntax,
                                             UID_JPEGProcess6_8TransferSyntax,
                                             UID_JPEGProcess7_9TransferSyntax,
                                             UID_JPEGProcess10_12TransferSyntax,
                                             UID_JPEGProcess11_13TransferSyntax,
                                             UID_JPEGProcess14TransferSyntax,
                                             UID_JPEGProcess15TransferSyntax,
                                             UID_JPEGProcess16_18TransferSyntax,
                                             UID_JPEGProcess17_19TransferSyntax,
                                             UID_JPEGProcess20_22TransferSyntax,
                                             UID_JPEGProcess21_23TransferSyntax,
                                             UID_JPEGProcess24_26TransferSyntax,
                                             UID_JPEGProcess25_27TransferSyntax,
                                             UID_JPEGProcess28TransferSyntax,
                                             UID_JPEGProcess29TransferSyntax,
                                             UID_JPEGProcess14SV1TransferSyntax,
                                             UID_JPEGLSLosslessTransferSyntax,
                                             UID_JPEGLSLossyTransferSyntax,
                                             UID_JPEG2000LosslessOnlyTransferSyntax,
                                             UID_JPEG2000TransferSyntax,
                                             UID_RLELosslessTransferSyntax,
                                             UID_MPEG2MainProfileAtMainLevelTransferSyntax,
                                             UID_MPEG2MainProfileAtHighLevelTransferSyntax,
                                             UID_MPEG4HighProfileLevel4_1TransferSyntax};
  std::vector<pacs::detail::ContextRequest> contexts;
  const auto& classes = pacs::detail::default_get_sop_classes();
  for (std::size_t i = 0; i < pacs::detail::kMaxContexts; ++i)
    contexts.push_back({classes[i % classes.size()], syntaxes, ASC_SC_ROLE_DEFAULT});
  const auto t0 = Clock::now();
  pacs::detail::Association big(scp_peer(door.port, "P2XBIGRQ", "TESTER"), contexts, "big");
  CHECK(seconds_since(t0) < 1.0);
  CHECK(big.accepted_contexts().size() == pacs::detail::kMaxContexts);
  CHECK(door.scp->counters().dropped == 0);
}

TEST_CASE("Storage SCP: a calling AE not allowed is rejected before it takes a slot",
          "[pacs][scp]") {
  pacs::ScpOptions opts;
  opts.allowed_calling_aes = {"GOOD", "ALSO-GOOD "};
  DoorScp door("P2XAECHECK", 1, opts);
  const auto good = scp_peer(door.port, "P2XAECHECK", "GOOD");
  const auto evil = scp_peer(door.port, "P2XAECHECK", "EVIL");
  {
    // The one slot is taken: EVIL still learns it is not recognized (permanent), not that
    // we are busy.
    pacs::detail::Association held(good, verification_context(), "hold");
    for (int i = 0; i < 3; ++i) {
      try {
        pacs::Client(evil).echo();
        FAIL("association from EVIL accepted");
      } catch (const pacs::PacsError& e) {
        INFO(e.what());
        CHECK(e.kind() == pacs::ErrorKind::Rejected);
        CHECK_FALSE(e.transient());
      }
    }
  }
  const auto c = door.scp->counters();
  CHECK(c.rejected_calling == 3);
  CHECK(c.rejected_busy == 0);
  // The SCP frees the held slot a moment after the release: echo once it has (a busy
  // rejection is transient), within 2 s.
  const auto echo_when_free = [](const pacs::Peer& peer) {
    for (int i = 0;; ++i) {
      try {
        return pacs::Client(peer).echo();
      } catch (const pacs::PacsError& e) {
        if (!e.transient() || i == 40) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  };
  CHECK(echo_when_free(good) > 0);
  CHECK(echo_when_free(scp_peer(door.port, "P2XAECHECK", "ALSO-GOOD")) > 0);
}

TEST_CASE("Storage SCP: an idle association is closed after idle_s and frees its slot",
          "[pacs][scp]") {
  pacs::ScpOptions opts;
  opts.idle_s = 1;
  DoorScp door("P2XIDLE", 1, opts);
  const auto peer = scp_peer(door.port, "P2XIDLE", "TESTER");
  const auto t0 = Clock::now();
  pacs::detail::Association held(peer, verification_context(), "hold");
  REQUIRE(test::wait_until([&] { return door.scp->counters().idle_closed == 1; },
                           std::chrono::seconds(10)));
  CHECK(seconds_since(t0) >= 0.9);  // not before idle_s
  REQUIRE(test::wait_until([&] { return door.scp->counters().open_associations == 0; },
                           std::chrono::seconds(5)));
  CHECK(pacs::Client(peer).echo() > 0);
  held.drop();
}

TEST_CASE(
    "Storage SCP: C-STOREs nobody waits for are refused before a byte is written, an "
    "unrouted association is capped",
    "[pacs][scp]") {
  auto& env = Env::get();
  const auto& wanted = env.study("STD002");
  const auto& other = env.study("STD007");
  pacs::ScpOptions opts;
  opts.max_unrouted_bytes = 1;  // the first unrouted instance already reaches it
  DoorScp door("P2XREFUSE", 2, opts);
  const auto store = [&](const test::GeneratedStudy& s, const std::string& ae, Uint16 id) {
    return store_files(door.port, "P2XREFUSE", "SENDER", s.files(), ae, id);
  };
  const auto count = [](const std::vector<Uint16>& statuses, Uint16 status) {
    return static_cast<int>(std::count(statuses.begin(), statuses.end(), status));
  };
  const int n_other = other.instance_count();
  // No retrieval waits at all.
  CHECK(count(store(other, "", 0), 0xA700) == n_other);
  CHECK(door.scp->counters().refused_unread == static_cast<std::uint64_t>(n_other));

  const auto dir = env.new_dir("refuse");
  auto route = door.scp->expect(wanted.study_uid, dir, {"SENDER"});
  // A Move Originator that is no C-MOVE of ours, although a route exists.
  CHECK(count(store(wanted, "P2XREFUSE", 4242), 0xA700) == wanted.instance_count());
  // One of ours, for a study without a route.
  pacs::detail::register_move("P2XREFUSE", 0x7701, other.study_uid);
  CHECK(count(store(other, "P2XREFUSE", 0x7701), 0xA700) == n_other);
  pacs::detail::unregister_move("P2XREFUSE", 0x7701);
  CHECK(door.scp->counters().refused_unread ==
        static_cast<std::uint64_t>(2 * n_other + wanted.instance_count()));
  CHECK(route->received() == 0);
  // One of ours for the routed study: received straight into the route.
  pacs::detail::register_move("P2XREFUSE", 0x7702, wanted.study_uid);
  CHECK(count(store(wanted, "P2XREFUSE", 0x7702), 0) == wanted.instance_count());
  pacs::detail::unregister_move("P2XREFUSE", 0x7702);
  CHECK(route->received() == wanted.instance_count());
  CHECK(count_entries(door.staging) == 0);

  // No Move Originator while a route exists: the first instance is received into staging and
  // refused once read; the association has then reached its unrouted cap and is aborted.
  REQUIRE(n_other >= 2);
  const auto statuses = store(other, "", 0);
  CHECK(statuses[0] == 0xA700);
  CHECK(count(statuses, 0xFFFF) == n_other - 1);
  CHECK(door.scp->counters().unrouted_aborted == 1);
  CHECK(count_entries(door.staging) == 0);
}

// Last: dcmqrscp keeps its index locked while its stuck child waits for the black hole.
TEST_CASE("A stuck C-MOVE is aborted by should_abort", "[pacs]") {
  auto& env = Env::get();
  const auto& study = env.study("STD003");
  // dcmqrscp tries to deliver to a port that never answers: no responses at all.
  pacs::Client client(env.peer(test::PacsKind::Dcmqrscp, kHoleAe));
  auto last = Clock::now();
  const auto t0 = Clock::now();
  try {
    client.move(
        {study.study_uid, {}, {}}, [&](const pacs::Progress&) { last = Clock::now(); },
        [&] { return seconds_since(last) > 1.5; });
    FAIL("stuck move returned");
  } catch (const pacs::PacsError& e) {
    CHECK(e.kind() == pacs::ErrorKind::Aborted);
  }
  const double took = seconds_since(t0);
  CHECK(took >= 1.5);
  CHECK(took < 6.0);
}
