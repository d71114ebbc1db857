// The Storage SCP's guard of a retrieval (issue 12, item 3) without any PACS: a StorageScp with
// routes, and C-STOREs sent from this test with DCMTK as whatever calling AE (and Move
// Originator) an attacker likes. Only the route's senders may store into it; a second copy of
// an instance is kept once when identical and quarantined beside the route when not; and the
// quarantine itself (numbered names, reasons, across filesystems). Its association slots
// (issue 21, item 4): caps per address and per AE title against associations held open by an
// AssociationHolder, and probation: a retrieval's C-STORE takes the slot of an idle one.
#include "pacs/association.hpp"
#include "pacs/pacs.hpp"
#include "support/assoc_holder.hpp"
#include "support/pacs_fixture.hpp"
#include "support/temp_dir.hpp"
#include "support/testdata.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

namespace fs = std::filesystem;
using namespace p2x;

namespace {

constexpr const char* kScpAe = "P2XGUARD";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Names in dir (empty if it does not exist).
std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

struct StoreReply {
  Uint16 status = 0xFFFF;
  std::string comment;
};

// Optional Move Originator of a C-STORE (the C-MOVE it claims to be a sub-operation of).
struct Originator {
  std::string ae;
  Uint16 id = 0;
};

// One C-STORE of `file` to the SCP on `port` with calling AE `calling`, on its own association.
StoreReply store(std::uint16_t port, const std::string& calling, const std::string& file,
                 const Originator& origin = {}) {
  DcmFileFormat ff;
  REQUIRE(ff.loadFile(file.c_str()).good());
  OFString sop_class, sop;
  ff.getDataset()->findAndGetOFString(DCM_SOPClassUID, sop_class);
  ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, sop);
  pacs::Peer peer;
  peer.ae_title = kScpAe;
  peer.host = "127.0.0.1";
  peer.port = port;
  peer.our_ae = calling;
  pacs::detail::Association assoc(
      peer, {{sop_class.c_str(), pacs::detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}},
      "C-STORE");
  T_DIMSE_C_StoreRQ req{};
  req.MessageID = assoc.get()->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, sop_class.c_str(), sizeof(req.AffectedSOPClassUID));
  OFStandard::strlcpy(req.AffectedSOPInstanceUID, sop.c_str(), sizeof(req.AffectedSOPInstanceUID));
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  if (!origin.ae.empty()) {
    req.opts = O_STORE_MOVEORIGINATORAETITLE | O_STORE_MOVEORIGINATORID;
    OFStandard::strlcpy(req.MoveOriginatorApplicationEntityTitle, origin.ae.c_str(),
                        sizeof(req.MoveOriginatorApplicationEntityTitle));
    req.MoveOriginatorID = origin.id;
  }
  T_DIMSE_C_StoreRSP rsp{};
  DcmDataset* detail = nullptr;
  const OFCondition cond =
      DIMSE_storeUser(assoc.get(), assoc.context_for(sop_class.c_str()), &req, nullptr,
                      ff.getDataset(), nullptr, nullptr, DIMSE_BLOCKING, 0, &rsp, &detail);
  REQUIRE(cond.good());
  StoreReply r{rsp.DimseStatus, pacs::detail::error_comment(detail)};
  delete detail;
  assoc.release();
  return r;
}

// A copy of `source` with ImageComments set (same SOP Instance UID: a different data set) or
// with a new series and instance.
std::string altered(const std::string& source, const std::string& out, bool new_series) {
  DcmFileFormat ff;
  REQUIRE(ff.loadFile(source.c_str()).good());
  DcmDataset* ds = ff.getDataset();
  char uid[100];
  if (new_series) {
    ds->putAndInsertString(DCM_SeriesInstanceUID, dcmGenerateUniqueIdentifier(uid));
    ds->putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid));
  } else {
    ds->putAndInsertString(DCM_ImageComments, "a different copy");
  }
  ff.getMetaInfo()->clear();
  REQUIRE(ff.saveFile(out.c_str(), EXS_LittleEndianExplicit).good());
  return out;
}

// A Storage SCP (no PACS) and two generated studies.
struct Guard {
  test::TempDir tmp{"p2x-scp-guard"};
  std::uint16_t port = test::free_port();
  std::vector<test::GeneratedStudy> studies;
  std::unique_ptr<pacs::StorageScp> scp;

  explicit Guard(pacs::ScpOptions opts = {}) {
    pacs::init_network();
    studies = test::generate(test::uniform_corpus(2, 1, 2), tmp.file("src"), 3);
    opts.staging_dir = tmp.file("staging");
    scp = std::make_unique<pacs::StorageScp>(kScpAe, port, 4, opts);
    scp->start();
  }
  const test::GeneratedFile& file(std::size_t study, std::size_t i = 0) const {
    return studies.at(study).series.at(0).files.at(i);
  }
  const std::string& uid(std::size_t study) const { return studies.at(study).study_uid; }
};

}  // namespace

TEST_CASE("scp guard: only the route's sender may store into it", "[pacs][scp-guard]") {
  Guard g;
  const std::string dir = g.tmp.file("spool/1");
  auto route = g.scp->expect(g.uid(0), dir, {"PACSA"});

  const auto evil = store(g.port, "EVIL", g.file(0).path);
  CHECK(evil.status == STATUS_STORE_Refused_NotAuthorized);
  CHECK(evil.comment == "calling AE EVIL may not store into this retrieval");
  CHECK(route->refused() == 1);
  CHECK(g.scp->refused() == 1);
  CHECK(route->received() == 0);
  CHECK(names_in(dir).empty());
  CHECK(names_in(g.tmp.file("staging")).empty());

  const auto pacs_a = store(g.port, "PACSA", g.file(0).path);
  CHECK(pacs_a.status == STATUS_Success);
  CHECK(route->received() == 1);
  CHECK(names_in(dir) == std::set<std::string>{g.file(0).sop_uid + ".dcm"});
}

TEST_CASE("scp guard: one PACS may not store into another PACS's retrieval", "[pacs][scp-guard]") {
  Guard g;
  auto from_a = g.scp->expect(g.uid(0), g.tmp.file("spool/1"), {"PACSA"});
  auto from_b = g.scp->expect(g.uid(1), g.tmp.file("spool/2"), {"PACSB"});
  // Both AEs may store to the SCP (each has a route), each only into its own retrieval.
  CHECK(store(g.port, "PACSB", g.file(0).path).status == STATUS_STORE_Refused_NotAuthorized);
  CHECK(store(g.port, "PACSA", g.file(1).path).status == STATUS_STORE_Refused_NotAuthorized);
  CHECK(store(g.port, "PACSA", g.file(0).path).status == STATUS_Success);
  CHECK(store(g.port, "PACSB", g.file(1).path).status == STATUS_Success);
  CHECK(from_a->received() == 1);
  CHECK(from_b->received() == 1);
  CHECK(from_a->refused() == 1);
  CHECK(from_b->refused() == 1);
  CHECK_THROWS_AS(g.scp->expect("1.2.3", g.tmp.file("spool/3"), {}), std::invalid_argument);
}

TEST_CASE("scp guard: the Move Originator must be our C-MOVE of this study", "[pacs][scp-guard]") {
  Guard g;
  const std::string dir = g.tmp.file("spool/1");
  auto route = g.scp->expect(g.uid(0), dir, {"PACSA"});
  const Uint16 ours = pacs::detail::next_message_id();
  const Uint16 other = pacs::detail::next_message_id();
  pacs::detail::register_move(kScpAe, ours, g.uid(0));
  pacs::detail::register_move(kScpAe, other, g.uid(1));

  auto r = store(g.port, "PACSA", g.file(0, 0).path, {"WORKSTATION", ours});
  CHECK(r.status == STATUS_STORE_Refused_NotAuthorized);
  CHECK(r.comment.find("C-MOVE by WORKSTATION") != std::string::npos);
  // Our C-MOVE of a study with no route here: refused before the data set is read.
  r = store(g.port, "PACSA", g.file(0, 0).path, {kScpAe, other});
  CHECK(r.status == STATUS_STORE_Refused_OutOfResources);
  CHECK(r.comment.find("no retrieval waiting for this study") != std::string::npos);
  // A forged originator naming our C-MOVE does not let another AE in (nor its data into dir).
  r = store(g.port, "EVIL", g.file(0, 0).path, {kScpAe, ours});
  CHECK(r.status == STATUS_STORE_Refused_NotAuthorized);
  CHECK(names_in(dir).empty());
  r = store(g.port, "PACSA", g.file(0, 0).path, {kScpAe, ours});
  CHECK(r.status == STATUS_Success);
  CHECK(route->received() == 1);
  CHECK(route->refused() == 2);  // WORKSTATION's and EVIL's (the other study's has no route)
  pacs::detail::unregister_move(kScpAe, ours);
  pacs::detail::unregister_move(kScpAe, other);
}

TEST_CASE("scp guard: a second copy is kept once if identical, quarantined if not",
          "[pacs][scp-guard]") {
  Guard g;
  const std::string dir = g.tmp.file("spool/7");
  auto route = g.scp->expect(g.uid(0), dir, {"PACSA", "PACSA2"});
  const auto& first = g.file(0);
  REQUIRE(store(g.port, "PACSA", first.path).status == STATUS_Success);
  const std::string placed = dir + "/" + first.sop_uid + ".dcm";
  const std::string original = read_bytes(placed);

  // The same data set again (a PACS repeating itself, also from its other AE title, which
  // the file's meta header names): one file, no quarantine.
  CHECK(store(g.port, "PACSA", first.path).status == STATUS_Success);
  CHECK(store(g.port, "PACSA2", first.path).status == STATUS_Success);
  CHECK(read_bytes(placed) == original);
  CHECK(route->received() == 1);
  CHECK(route->quarantined() == 0);
  CHECK_FALSE(fs::exists(pacs::quarantine_dir_for(dir)));

  // A different data set under the same SOP Instance UID: the first copy stays.
  const std::string other = altered(first.path, g.tmp.file("other.dcm"), false);
  CHECK(store(g.port, "PACSA", other).status == STATUS_Success);
  CHECK(store(g.port, "PACSA", other).status == STATUS_Success);
  CHECK(read_bytes(placed) == original);
  CHECK(names_in(dir) == std::set<std::string>{first.sop_uid + ".dcm"});
  CHECK(route->received() == 1);
  CHECK(route->quarantined() == 2);
  const std::string quarantine = g.tmp.file("spool/.quarantine/7");
  CHECK(pacs::quarantine_dir_for(dir) == quarantine);
  CHECK(names_in(quarantine) ==
        std::set<std::string>{first.sop_uid + ".dcm", first.sop_uid + "~2.dcm", "reasons.txt"});
  CHECK(read_bytes(quarantine + "/" + first.sop_uid + ".dcm").find("a different copy") !=
        std::string::npos);
  const auto listed = pacs::quarantined_files(dir);
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].name == first.sop_uid + ".dcm");
  CHECK(listed[0].reason ==
        "second copy of " + first.sop_uid + " differs from the first (kept); sent by AE PACSA");
}

TEST_CASE("quarantine: beside the directory, numbered names, any filesystem",
          "[pacs][quarantine]") {
  test::TempDir tmp("p2x-quarantine");
  const std::string dest = tmp.file("spool/12");
  CHECK(pacs::quarantine_dir_for(dest) == tmp.file("spool/.quarantine/12"));
  CHECK(pacs::quarantine_dir_for(dest + "/") == tmp.file("spool/.quarantine/12"));
  CHECK(pacs::quarantined_files(dest).empty());
  fs::create_directories(dest);
  std::ofstream(dest + "/a.dcm") << "first";
  std::ofstream(tmp.file("b.dcm")) << "second";
  CHECK(pacs::quarantine_file(dest + "/a.dcm", dest, "a.dcm", "why\tnot\none") ==
        tmp.file("spool/.quarantine/12/a.dcm"));
  CHECK(pacs::quarantine_file(tmp.file("b.dcm"), dest, "a.dcm", "again") ==
        tmp.file("spool/.quarantine/12/a~2.dcm"));
  CHECK_FALSE(fs::exists(dest + "/a.dcm"));
  CHECK(read_bytes(tmp.file("spool/.quarantine/12/a.dcm")) == "first");
  if (fs::is_directory("/dev/shm")) {  // across filesystems: copied, then removed
    test::TempDir shm("/dev/shm/p2x-quarantine");
    std::ofstream(shm.file("c.dcm")) << "third";
    CHECK(pacs::quarantine_file(shm.file("c.dcm"), dest, "a.dcm", "from elsewhere") ==
          tmp.file("spool/.quarantine/12/a~3.dcm"));
    CHECK_FALSE(fs::exists(shm.file("c.dcm")));
  }
  // A file whose reason was never written is still listed.
  std::ofstream(tmp.file("spool/.quarantine/12/z.dcm")) << "orphan";
  const auto listed = pacs::quarantined_files(dest);
  std::vector<std::string> reasons;
  for (const auto& q : listed) reasons.push_back(q.name + ": " + q.reason);
  std::vector<std::string> want = {"a.dcm: why not one", "a~2.dcm: again"};
  if (fs::is_directory("/dev/shm")) want.push_back("a~3.dcm: from elsewhere");
  want.push_back("z.dcm: no reason recorded");
  CHECK(reasons == want);
  CHECK_THROWS_AS(pacs::quarantine_file(tmp.file("absent.dcm"), dest, "x.dcm", "gone"),
                  std::runtime_error);
}

namespace {

test::HoldOptions holding(std::uint16_t port, const std::string& calling, const std::string& from,
                          int count) {
  test::HoldOptions h;
  h.port = port;
  h.called_ae = kScpAe;
  h.calling_ae = calling;
  h.source = from;
  h.count = count;
  return h;
}

// Waits until `done` holds (false after timeout_ms).
template <class F>
bool eventually(F done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

TEST_CASE("scp slots: one address and one AE title cannot hold every slot", "[pacs][scp-guard]") {
  pacs::ScpOptions opts;
  opts.max_per_address = 2;
  opts.max_per_ae = 3;
  Guard g(opts);  // 4 slots
  auto route = g.scp->expect(g.uid(0), g.tmp.file("spool/1"), {"PACSA"});
  // One host tries to hold all 4 (renewing what is refused): it gets 2.
  test::AssociationHolder host(holding(g.port, "HOLDER", "127.0.0.2", 4));
  REQUIRE(host.wait_held(2, 5000));
  REQUIRE(eventually([&] { return host.rejected() >= 4; }, 5000));
  CHECK(host.held() == 2);
  // The same title from another host: one more, the title has 3.
  test::AssociationHolder title(holding(g.port, "HOLDER", "127.0.0.3", 4));
  REQUIRE(title.wait_held(1, 5000));
  REQUIRE(eventually([&] { return title.rejected() >= 4; }, 5000));
  CHECK(title.held() == 1);
  CHECK(host.held() == 2);
  // The fourth slot is the PACS's.
  CHECK(store(g.port, "PACSA", g.file(0).path).status == STATUS_Success);
  CHECK(route->received() == 1);
  CHECK(route->busy_refused() == 0);  // HOLDER is none of its senders
  const auto c = g.scp->counters();
  CHECK(c.rejected_busy >= 8);
  CHECK(c.evicted == 0);
}

TEST_CASE(
    "scp slots: a retrieval's C-STORE takes the slot of an association held idle under "
    "the PACS's own title, renewed as it is closed",
    "[pacs][scp-guard]") {
  pacs::ScpOptions opts;
  opts.fresh_grace_ms = 300;
  opts.probation_s = 1;
  Guard g(opts);  // 4 slots, no caps of their own
  const std::string dir = g.tmp.file("spool/1");
  auto route = g.scp->expect(g.uid(0), dir, {"PACSA"});
  const Uint16 move = pacs::detail::next_message_id();
  pacs::detail::register_move(kScpAe, move, g.uid(0));
  // The attacker holds 8 as PACSA from the PACS's address: 4 slots and 4 on probation.
  test::AssociationHolder attack(holding(g.port, "PACSA", "127.0.0.1", 8));
  REQUIRE(attack.wait_held(8, 5000));
  // Another title is still turned away while the slots are taken.
  CHECK(store(g.port, "PACSA", g.file(0).path).status == STATUS_STORE_Refused_OutOfResources);
  try {
    pacs::detail::Association other(
        [&] {
          pacs::Peer p;
          p.ae_title = kScpAe;
          p.host = "127.0.0.1";
          p.port = g.port;
          p.our_ae = "OTHER";
          return p;
        }(),
        {{UID_VerificationSOPClass, pacs::detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}},
        "echo");
    FAIL("OTHER was accepted although every slot is taken");
  } catch (const pacs::PacsError& e) {
    CHECK(e.kind() == pacs::ErrorKind::Rejected);
    CHECK(e.transient());
  }
  // Holders that stored nothing since they opened (at least fresh_grace_ms ago) give way to
  // C-STOREs of our C-MOVE, one per association, again and again.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // the holders' age, not a sync
  for (int i = 0; i < 2; ++i) {
    INFO("instance " << i);
    const auto r = store(g.port, "PACSA", g.file(0, i).path, {kScpAe, move});
    CHECK(r.status == STATUS_Success);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  CHECK(route->received() == 2);
  CHECK(names_in(dir).size() == 2);
  const auto c = g.scp->counters();
  CHECK(c.evicted >= 1);  // a slot may also have been free (the first store's, released)
  CHECK(attack.closed_by_peer() >= 1);
  // The C-STORE without a Move Originator (and the refused one above) found the SCP full: the
  // route knows its sender was turned away for lack of a slot.
  CHECK(route->busy_refused() >= 1);
  // The attacker's associations on probation are closed after probation_s and renewed.
  CHECK(eventually([&] { return g.scp->counters().probation_closed >= 4; }, 5000));
  pacs::detail::unregister_move(kScpAe, move);
}
