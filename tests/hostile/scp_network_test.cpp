// The Storage SCP's network door of the real daemon, attacked (issue 12: items 4, 5, 6 and the
// calling AE check). DCMTK's echoscu and in-test DcmSCU associations play the attacker against
// a World (real PACS + XNAT stand-in + pacs2xnatd): a foreign calling AE is rejected at
// A-ASSOCIATE time and logged once; C-STOREs of a study nobody asked for are refused before a
// byte lands in spool/.incoming (watched with inotify); silent and half-sent connections do not
// delay echoscu; an AE not allowed cannot hold a slot; associations held idle and renewed
// (issue 21, item 4), even under the PACS's own title, cannot keep a retrieval out: the study
// is verified without using an attempt, against Orthanc and dcmqrscp.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/oflog/oflog.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "assoc_holder.hpp"
#include "ipc/client.hpp"
#include "process.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kOurAe = "P2XTEST";  // World's daemon AE title

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::uint16_t storage_port(World& w) {
  std::ifstream in(w.daemon().config_path());
  return json::parse(in).at("storage_port").get<std::uint16_t>();
}

// Counts what is created or written in a directory (inotify) from now on.
class DirWatch {
 public:
  explicit DirWatch(const std::string& dir) {
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    REQUIRE(fd_ >= 0);
    REQUIRE(::inotify_add_watch(fd_, dir.c_str(),
                                IN_CREATE | IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE) >= 0);
  }
  ~DirWatch() { ::close(fd_); }
  DirWatch(const DirWatch&) = delete;
  DirWatch& operator=(const DirWatch&) = delete;
  // Names of the entries events were reported for so far.
  std::set<std::string> touched() {
    alignas(inotify_event) char buf[16384];
    for (;;) {
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        if (ev->len > 0) names_.insert(ev->name);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      }
    }
    return names_;
  }

 private:
  int fd_ = -1;
  std::set<std::string> names_;
};

// A raw TCP connection (from `source`, a loopback address) that sends `bytes`, maybe none.
struct RawPeer {
  int fd = -1;
  RawPeer(std::uint16_t port, const std::string& bytes, const char* source) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
    if (!bytes.empty()) REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) > 0);
  }
  ~RawPeer() { ::close(fd); }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  bool closed_within(int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    char buf[256];
    while (Clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) return true;
    }
    return false;
  }
};

// One association to the daemon's SCP as `calling`, proposing Verification and the storage
// contexts `files` need.
std::unique_ptr<DcmSCU> associate(std::uint16_t port, const std::string& calling,
                                  const std::vector<std::string>& files = {}) {
  OFLog::configure(OFLogger::WARN_LOG_LEVEL);
  auto scu = std::make_unique<DcmSCU>();
  scu->setAETitle(calling.c_str());
  scu->setPeerAETitle(kOurAe);
  scu->setPeerHostName("127.0.0.1");
  scu->setPeerPort(port);
  scu->setACSETimeout(5);
  scu->setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu->setDIMSETimeout(10);
  OFList<OFString> uncompressed;
  uncompressed.push_back(UID_LittleEndianExplicitTransferSyntax);
  uncompressed.push_back(UID_LittleEndianImplicitTransferSyntax);
  scu->addPresentationContext(UID_VerificationSOPClass, uncompressed);
  std::set<std::string> classes;
  for (const auto& f : files) {
    DcmFileFormat ff;
    REQUIRE(ff.loadFile(f.c_str()).good());
    OFString cls;
    ff.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, cls);
    if (classes.insert(cls.c_str()).second) scu->addPresentationContext(cls, uncompressed);
  }
  REQUIRE(scu->initNetwork().good());
  if (scu->negotiateAssociation().bad()) return nullptr;
  return scu;
}

// C-STOREs the files on the association, with a Move Originator when `originator` is given;
// the statuses (0xFFFF: not sent).
std::vector<Uint16> store(DcmSCU& scu, const std::vector<std::string>& files,
                          const std::string& originator = "", Uint16 originator_id = 0) {
  std::vector<Uint16> statuses;
  for (const auto& f : files) {
    Uint16 status = 0xFFFF;
    if (scu.sendSTORERequest(0, f.c_str(), nullptr, status, originator.c_str(), originator_id)
            .bad())
      status = 0xFFFF;
    statuses.push_back(status);
  }
  scu.releaseAssociation();
  return statuses;
}

// echoscu as the PACS's AE title (allowed), timed; -1 when it failed.
double timed_echoscu(std::uint16_t port, const std::string& calling) {
  SpawnOptions o;
  o.own_process_group = false;
  const auto t0 = Clock::now();
  const int rc = run(
      {"echoscu", "-aet", calling, "-aec", kOurAe, "127.0.0.1", std::to_string(port)}, o, 60000);
  return rc == 0 ? seconds_since(t0) : -1.0;
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

void check_daemon_serves(World& w) {
  REQUIRE(w.daemon().running());
  const auto t0 = Clock::now();
  const json r = p2x::ipc::call(w.daemon().socket(), "ping", json::object(), 5);
  CHECK(r["ok"] == true);
  CHECK(seconds_since(t0) < 1.0);
}

}  // namespace

TEST_CASE(
    "SCP door: foreign AE rejected, unwanted C-STOREs refused before a byte lands, silent "
    "connections stall nobody",
    "[hostile][scp]") {
  WorldOptions o;
  o.studies = uniform_corpus(1, 2, 3, "MR", "HOSTILE");
  World w(o);
  const std::uint16_t port = storage_port(w);
  const std::string pacs_ae = w.pacs().ae_title();
  const auto files = w.studies()[0].files();
  DirWatch incoming(w.daemon().state_dir() + "/spool/.incoming");

  SECTION("a calling AE that is not a configured PACS is rejected at A-ASSOCIATE time") {
    for (int i = 0; i < 3; ++i) CHECK(associate(port, "EVIL") == nullptr);
    CHECK(associate(port, "EVIL", files) == nullptr);
    CHECK(timed_echoscu(port, "EVIL") < 0);
    const std::string line =
        "association from 'EVIL' at 127.0.0.1 rejected: calling AE title not recognized";
    // Warned once however often it comes (the repeats are at debug level, without this end).
    CHECK(occurrences(w.daemon().log(), line) >= 5);
    CHECK(occurrences(w.daemon().log(), line + " (not in storage_allowed_calling_aes) (logged "
                                               "once per peer; counted)") == 1);
    CHECK(timed_echoscu(port, pacs_ae) >= 0);
  }
  SECTION("C-STOREs of a study nobody asked for are refused before anything is written") {
    // As the PACS's own AE title (any sender can claim it): without and with a Move
    // Originator that is none of the daemon's C-MOVEs.
    auto plain = associate(port, pacs_ae, files);
    REQUIRE(plain);
    const auto statuses = store(*plain, files);
    CHECK(std::count(statuses.begin(), statuses.end(), 0xA700) == static_cast<long>(files.size()));
    auto moved = associate(port, pacs_ae, files);
    REQUIRE(moved);
    const auto moved_statuses = store(*moved, files, kOurAe, 4242);
    CHECK(std::count(moved_statuses.begin(), moved_statuses.end(), 0xA700) ==
          static_cast<long>(files.size()));
    CHECK(incoming.touched().empty());
    CHECK(w.daemon().log().find("no retrieval waiting for any study here") != std::string::npos);
  }
  SECTION("connections that send nothing or half a header do not delay echoscu") {
    std::vector<std::unique_ptr<RawPeer>> silent;
    for (int i = 0; i < 3; ++i) silent.push_back(std::make_unique<RawPeer>(port, "", "127.0.0.1"));
    silent.push_back(
        std::make_unique<RawPeer>(port, std::string("\x01\x00\x00\x00", 4), "127.0.0.1"));
    // And a flood from another address: beyond the per-address bound, closed at once.
    for (int i = 0; i < 40; ++i) silent.push_back(std::make_unique<RawPeer>(port, "", "127.0.0.2"));
    // The daemon accepts in order: once the last of the flood is closed, every one before
    // it has been taken in (the silent ones wait for their request).
    REQUIRE(silent.back()->closed_within(2000));
    for (int i = 0; i < 3; ++i) {
      const double took = timed_echoscu(port, pacs_ae);
      INFO("echoscu took " << took << " s");
      CHECK(took >= 0);
      CHECK(took < 1.0);
    }
    // The silent ones are closed after the short request timeout (5 s), not kept.
    CHECK(silent.front()->closed_within(7000));
  }
  check_daemon_serves(w);
  CHECK(w.xnat().uploads_per_session().empty());
  CHECK(w.spool_files().empty());
}

TEST_CASE(
    "SCP door: 16 associations held idle and renewed - under the PACS's own AE title from "
    "its address, and from another host - cannot starve a retrieval, a foreign AE cannot "
    "hold a slot",
    "[hostile][scp]") {
  const auto kind = GENERATE(PacsKind::Orthanc, PacsKind::Dcmqrscp);
  INFO(to_string(kind));
  WorldOptions o;
  o.pacs = kind;
  o.studies = uniform_corpus(3, 2, 3, "MR", "FULL");
  o.config = {{"storage_allowed_calling_aes", {"WORKSTATION"}}};
  World w(o);
  const std::uint16_t port = storage_port(w);
  const std::string pacs_ae = w.pacs().ae_title();

  // EVIL tries to hold all 16 associations: rejected at A-ASSOCIATE time, it holds none.
  for (int i = 0; i < 16; ++i) CHECK(associate(port, "EVIL") == nullptr);

  // The attack (issue 21): 16 associations under the PACS's own title from the PACS's address,
  // 16 under an allowed title from another host, held open idle and renewed as soon as they
  // are closed or refused. The caps (8 per address, 8 per title) fill the 16 slots.
  const auto hold = [&](const std::string& calling, const std::string& from) {
    HoldOptions h;
    h.port = port;
    h.called_ae = kOurAe;
    h.calling_ae = calling;
    h.source = from;
    h.count = 16;
    return h;
  };
  AssociationHolder same(hold(pacs_ae, "127.0.0.1"));
  AssociationHolder other(hold("WORKSTATION", "127.0.0.2"));
  REQUIRE(same.wait_held(8, 10000));
  REQUIRE(other.wait_held(8, 10000));
  CHECK(timed_echoscu(port, "WORKSTATION") < 0);  // every slot is taken

  const int job = w.submit(w.write_csv("full.csv", w.accession_csv({0, 1, 2})));
  w.wait_done(job, 240);
  w.check_verified_once(job, {0, 1, 2});
  for (const auto& item : w.items(job)) {
    INFO(item.dump(2));
    CHECK(item["attempts"] == 0);  // waiting for a slot is no failed attempt
  }
  // The PACS's C-STOREs took slots of associations held idle under its own title; the other
  // host kept its share, never more.
  const auto deadline = Clock::now() + std::chrono::seconds(5);  // it closes within a second
  while (same.closed_by_peer() < 1 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(same.closed_by_peer() >= 1);
  CHECK(w.daemon().log().find("its slot went to '" + pacs_ae +
                              "' at 127.0.0.1, storing into "
                              "a retrieval") != std::string::npos);
  CHECK(other.held() <= 8);
  CHECK(same.accepted() > 8);
  check_daemon_serves(w);
}
