// lib/pacs with the SOP classes real studies carry (testdata.hpp sop_class_corpus: CT with dose
// SR, dose screen, PDF, KO, PR and a report; RT planning CT + RTSTRUCT/RTPLAN/RTDOSE; Enhanced MR
// + Siemens CSA Non-Image, a private class) against Orthanc and dcmqrscp: the Storage SCP takes
// a private class, C-MOVE brings every class, C-FIND reports the study's classes (Orthanc), and
// C-GET proposes exactly those - failing, naming them, for classes the PACS will not send or
// that do not fit in one association. One process for all cases (the PACSes start once).
#include "pacs/association.hpp"
#include "pacs/pacs.hpp"
#include "pacs/retrieval.hpp"
#include "support/counting_proxy.hpp"
#include "support/pacs_fixture.hpp"
#include "support/temp_dir.hpp"
#include "support/testdata.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>

namespace fs = std::filesystem;
using namespace p2x;

namespace {

constexpr const char* kOurAe = "P2XSOPTEST";
constexpr const char* kCsa = "1.3.12.2.1107.5.9.1";
const test::PacsKind kKinds[] = {test::PacsKind::Orthanc, test::PacsKind::Dcmqrscp};

struct Env {
  test::TempDir root{"p2x-sop-classes"};
  std::vector<test::GeneratedStudy> studies;
  std::uint16_t scp_port = test::free_port();
  std::unique_ptr<test::PacsFixture> orthanc, dcmqrscp;
  std::unique_ptr<pacs::StorageScp> scp;
  int dir_counter = 0;

  Env() {
    pacs::init_network();
    studies = test::generate(test::sop_class_corpus("SOPC"), root.file("src"));
    std::vector<std::string> files;
    for (const auto& s : studies)
      for (const auto& f : s.files()) files.push_back(f);
    const std::vector<test::MoveDestination> dests = {{kOurAe, scp_port}};
    orthanc =
        std::make_unique<test::PacsFixture>(test::PacsKind::Orthanc, root.file("orthanc"), dests);
    dcmqrscp =
        std::make_unique<test::PacsFixture>(test::PacsKind::Dcmqrscp, root.file("dcmqrscp"), dests);
    orthanc->start();
    dcmqrscp->start();
    orthanc->load(files);
    dcmqrscp->load(files);
    pacs::ScpOptions opts;
    opts.staging_dir = root.file("staging");
    scp = std::make_unique<pacs::StorageScp>(kOurAe, scp_port, 4, opts);
    scp->start();
  }

  static Env& get() {
    static Env env;
    return env;
  }

  test::PacsFixture& fixture(test::PacsKind kind) {
    return kind == test::PacsKind::Orthanc ? *orthanc : *dcmqrscp;
  }

  pacs::Peer peer(test::PacsKind kind, std::uint16_t port = 0) {
    pacs::Peer p;
    p.ae_title = fixture(kind).ae_title();
    p.host = "127.0.0.1";
    p.port = port ? port : fixture(kind).port();
    p.our_ae = kOurAe;
    p.timeouts.connect_s = 3;
    p.timeouts.acse_s = 5;
    p.timeouts.dimse_s = 20;
    p.timeouts.idle_s = 20;
    return p;
  }

  // The corpus study whose files include the SOP class.
  const test::GeneratedStudy& study_with(const std::string& sop_class) {
    for (const auto& s : studies)
      for (const auto& se : s.series)
        for (const auto& f : se.files)
          if (f.sop_class == sop_class) return s;
    throw std::runtime_error("no study with " + sop_class);
  }

  std::string new_dir(const std::string& tag) {
    const std::string d = root.file("out/" + tag + "-" + std::to_string(++dir_counter));
    fs::create_directories(d);
    return d;
  }
};

std::vector<test::GeneratedFile> files_of(const test::GeneratedStudy& s) {
  std::vector<test::GeneratedFile> out;
  for (const auto& series : s.series)
    for (const auto& f : series.files) out.push_back(f);
  return out;
}

std::set<std::string> classes_of(const test::GeneratedStudy& s) {
  std::set<std::string> out;
  for (const auto& f : files_of(s)) out.insert(f.sop_class);
  return out;
}

// The data set re-encoded one fixed way (a PACS may re-encode sequence lengths on the way).
std::string canonical(const std::string& file) {
  DcmFileFormat ff;
  REQUIRE(ff.loadFile(file.c_str()).good());
  const std::string tmp = file + ".canonical";
  REQUIRE(ff.getDataset()
              ->saveFile(tmp.c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength, EGL_withoutGL)
              .good());
  std::ifstream in(tmp, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(tmp);
  return bytes;
}

std::string sop_class_in(const std::string& file) {
  DcmFileFormat ff;
  REQUIRE(ff.loadFile(file.c_str()).good());
  OFString v;
  ff.getDataset()->findAndGetOFString(DCM_SOPClassUID, v);
  return v.c_str();
}

// dir holds exactly the expected instances (named <SOP Instance UID>.dcm), each with the content
// of its source file.
void check_received(const std::string& dir, const std::vector<test::GeneratedFile>& expected) {
  std::set<std::string> names, want;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  for (const auto& f : expected) want.insert(f.sop_uid + ".dcm");
  CHECK(names == want);
  for (const auto& f : expected) {
    const std::string got = dir + "/" + f.sop_uid + ".dcm";
    if (!fs::exists(got)) continue;
    INFO(f.sop_class << " " << f.sop_uid);
    CHECK(sop_class_in(got) == f.sop_class);
    CHECK(canonical(got) == canonical(f.path));
  }
}

pacs::Selection whole(const test::GeneratedStudy& s, std::vector<std::string> classes = {}) {
  return {s.study_uid, {}, {}, std::move(classes)};
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE(
    "Storage SCP: a private SOP class (Siemens CSA Non-Image) is accepted and stored "
    "unchanged",
    "[pacs][sop]") {
  auto& env = Env::get();
  const auto& study = env.study_with(kCsa);
  test::GeneratedFile csa;
  for (const auto& f : files_of(study))
    if (f.sop_class == kCsa) csa = f;
  const std::string dir = env.new_dir("scp-private");
  auto route = env.scp->expect(study.study_uid, dir, {"P2XSENDER"});
  DcmSCU scu;
  scu.setAETitle("P2XSENDER");
  scu.setPeerAETitle(kOurAe);
  scu.setPeerHostName("127.0.0.1");
  scu.setPeerPort(env.scp_port);
  scu.setACSETimeout(5);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setDIMSETimeout(10);
  OFList<OFString> syntaxes;
  syntaxes.push_back(UID_LittleEndianExplicitTransferSyntax);
  scu.addPresentationContext(kCsa, syntaxes);
  REQUIRE(scu.initNetwork().good());
  REQUIRE(scu.negotiateAssociation().good());
  const auto pres = scu.findPresentationContextID(kCsa, UID_LittleEndianExplicitTransferSyntax);
  REQUIRE(pres != 0);  // the private class was accepted
  Uint16 status = 0xFFFF;
  REQUIRE(scu.sendSTORERequest(pres, csa.path.c_str(), nullptr, status).good());
  scu.releaseAssociation();
  CHECK(status == STATUS_Success);
  CHECK(route->received() == 1);
  check_received(dir, {csa});
}

TEST_CASE("C-MOVE brings every SOP class, the private one included, from Orthanc and dcmqrscp",
          "[pacs][sop]") {
  auto& env = Env::get();
  for (auto kind : kKinds) {
    for (const auto& study : env.studies) {
      INFO(test::to_string(kind) << " " << study.spec.accession);
      const auto dir = env.new_dir("move");
      auto route = env.scp->expect(study.study_uid, dir, {env.fixture(kind).ae_title()});
      const auto r = pacs::Client(env.peer(kind)).move(whole(study));
      CHECK(r.failed == 0);
      CHECK(r.completed == study.instance_count());
      CHECK(route->received() == study.instance_count());
      check_received(dir, files_of(study));
    }
  }
}

TEST_CASE("C-FIND: Orthanc reports the study's SOP classes and each instance's - dcmqrscp neither",
          "[pacs][sop]") {
  auto& env = Env::get();
  for (auto kind : kKinds) {
    pacs::Client client(env.peer(kind));
    for (const auto& study : env.studies) {
      INFO(test::to_string(kind) << " " << study.spec.accession);
      pacs::Query q;
      q.accession = study.spec.accession;
      const auto m = client.find_studies(q);
      REQUIRE(m.size() == 1);
      const std::set<std::string> got(m[0].sop_classes.begin(), m[0].sop_classes.end());
      if (kind == test::PacsKind::Orthanc) {
        CHECK(got == classes_of(study));
      } else {
        CHECK(got.empty());
      }
      for (const auto& se : study.series) {
        std::set<std::string> want, found;
        for (const auto& f : se.files) want.insert(f.sop_class);
        for (const auto& i : client.find_instances(study.study_uid, se.uid))
          found.insert(i.sop_class);
        CHECK(found == (kind == test::PacsKind::Orthanc ? want : std::set<std::string>{""}));
      }
    }
  }
}

TEST_CASE(
    "C-GET of studies with RT Plan, dose SR, PDF, KO, PR and a private class: the study's "
    "own classes are negotiated",
    "[pacs][sop]") {
  auto& env = Env::get();
  for (auto kind : kKinds) {
    for (const auto& study : env.studies) {
      INFO(test::to_string(kind) << " " << study.spec.accession);
      // As the pipeline does: the classes from C-FIND (dcmqrscp: none, the built-in list).
      auto retrieval = pacs::DimsePacs(nullptr).open(env.peer(kind), pacs::RetrieveMethod::Get);
      pacs::Query q;
      q.accession = study.spec.accession;
      const auto m = retrieval->find_studies(q);
      REQUIRE(m.size() == 1);
      const auto dir = env.new_dir("get");
      const auto r = retrieval->fetch({whole(study, m[0].sop_classes)}, dir, {});
      retrieval->close();
      CHECK(r.failed == 0);
      CHECK(r.received == study.instance_count());
      check_received(dir, files_of(study));
    }
  }
}

TEST_CASE("C-GET proposing only the CT class leaves the RT objects behind (why classes matter)",
          "[pacs][sop]") {
  // What a fixed list without the RT classes did: Orthanc stops the C-GET at the first instance
  // it has no context for ("No presentation context for: (RP) ..."), dcmqrscp fails each one.
  auto& env = Env::get();
  const auto& study = env.study_with(UID_RTPlanStorage);
  for (auto kind : kKinds) {
    INFO(test::to_string(kind));
    const auto dir = env.new_dir("get-ct-only");
    const auto r = pacs::Client(env.peer(kind)).get(whole(study), dir, {UID_CTImageStorage});
    int ct = 0;
    for (const auto& f : files_of(study)) ct += f.sop_class == UID_CTImageStorage;
    CHECK(r.received <= ct);
    CHECK(r.failed >= 1);
    if (kind == test::PacsKind::Dcmqrscp) {
      CHECK(r.received == ct);
      CHECK(r.failed == study.instance_count() - ct);
    }
    for (const auto& e : fs::directory_iterator(dir))
      CHECK(sop_class_in(e.path()) == UID_CTImageStorage);
  }
}

TEST_CASE("C-GET of a class the PACS does not accept fails before any transfer, naming it",
          "[pacs][sop]") {
  auto& env = Env::get();
  // dcmqrscp's profile accepts a fixed list of storage classes (pacs_fixture.cpp): not this one.
  const auto& study = env.study_with(UID_RTPlanStorage);
  const std::vector<std::string> classes = {UID_CTImageStorage, UID_RTPlanStorage,
                                            UID_OphthalmicPhotography8BitImageStorage};
  for (int via_session = 0; via_session < 2; ++via_session) {
    INFO((via_session ? "Session::get" : "Client::get"));
    const auto dir = env.new_dir("get-refused");
    pacs::Client client(env.peer(test::PacsKind::Dcmqrscp));
    try {
      if (via_session) {
        pacs::Session session(client, true);
        session.get(whole(study, classes), dir);
      } else {
        client.get(whole(study, classes), dir);
      }
      FAIL("the C-GET went ahead");
    } catch (const pacs::PacsError& e) {
      INFO(e.what());
      CHECK(e.kind() == pacs::ErrorKind::Rejected);
      CHECK_FALSE(e.transient());
      CHECK(has(e.what(), "OphthalmicPhotography8BitImageStorage (" +
                              std::string(UID_OphthalmicPhotography8BitImageStorage) + ")"));
      CHECK(has(e.what(), "the PACS accepted none of the storage contexts"));
      CHECK_FALSE(has(e.what(), "RTPlanStorage"));
    }
    CHECK(fs::is_empty(dir));
  }
}

TEST_CASE(
    "C-GET of more SOP classes than one association carries fails naming those left out, "
    "without connecting",
    "[pacs][sop]") {
  auto& env = Env::get();
  const auto& study = env.study_with(UID_RTPlanStorage);
  std::vector<std::string> classes;
  for (int i = 1; i <= 130; ++i)
    classes.push_back("1.2.826.0.1.3680043.10.9999." + std::to_string(i));
  test::CountingProxy proxy(env.fixture(test::PacsKind::Orthanc).port());
  pacs::Client client(env.peer(test::PacsKind::Orthanc, proxy.port()));
  try {
    client.get(whole(study, classes), env.new_dir("get-too-many"));
    FAIL("the C-GET went ahead");
  } catch (const pacs::PacsError& e) {
    INFO(e.what());
    CHECK(e.kind() == pacs::ErrorKind::Rejected);
    CHECK_FALSE(e.transient());
    CHECK(has(e.what(), "130 storage SOP classes"));
    // One association: the GET model and 127 classes; the last three are named.
    for (int i = 128; i <= 130; ++i)
      CHECK(has(e.what(), "1.2.826.0.1.3680043.10.9999." + std::to_string(i)));
    CHECK_FALSE(has(e.what(), "1.2.826.0.1.3680043.10.9999.127,"));
  }
  pacs::Session session(client, true);
  CHECK_THROWS_AS(session.get(whole(study, classes), env.new_dir("get-too-many")), pacs::PacsError);
  CHECK(proxy.total_connections() == 0);
}

TEST_CASE(
    "Session: a C-GET of classes the C-FIND association was negotiated for reuses it - "
    "others get one association for their study",
    "[pacs][sop]") {
  auto& env = Env::get();
  const auto& study = env.study_with(UID_XRayRadiationDoseSRStorage);
  const auto study_classes = classes_of(study);
  const std::vector<std::string> known(study_classes.begin(), study_classes.end());
  test::CountingProxy proxy(env.fixture(test::PacsKind::Orthanc).port());
  pacs::Client client(env.peer(test::PacsKind::Orthanc, proxy.port()));
  {
    pacs::Session session(client, true);
    pacs::Query q;
    q.study_uid = study.study_uid;
    REQUIRE(session.find_studies(q).size() == 1);
    const auto dir = env.new_dir("session-defaults");
    CHECK(session.get(whole(study, known), dir).received == study.instance_count());
    session.close();
  }
  CHECK(proxy.total_connections() == 1);  // every class of the study is in the defaults
  proxy.reset_counts();
  {
    // A class outside the defaults (Orthanc accepts unknown classes): a new association for
    // the study's classes, the C-FINDs' one released first.
    auto with_extra = known;
    with_extra.push_back(UID_VLPhotographicImageStorage);
    pacs::Session session(client, true);
    pacs::Query q;
    q.study_uid = study.study_uid;
    REQUIRE(session.find_studies(q).size() == 1);
    const auto dir = env.new_dir("session-own");
    CHECK(session.get(whole(study, with_extra), dir).received == study.instance_count());
    // ... and it serves the next C-FIND too.
    REQUIRE(session.find_studies(q).size() == 1);
    session.close();
    check_received(dir, files_of(study));
  }
  CHECK(proxy.total_connections() == 2);
  CHECK(proxy.max_concurrent() == 1);
}

TEST_CASE("DimsePacs: selections whose classes fit together share one C-GET association",
          "[pacs][sop]") {
  auto& env = Env::get();
  const auto& study = env.study_with(UID_RTPlanStorage);
  test::CountingProxy proxy(env.fixture(test::PacsKind::Orthanc).port());
  auto retrieval = pacs::DimsePacs(nullptr).open(env.peer(test::PacsKind::Orthanc, proxy.port()),
                                                 pacs::RetrieveMethod::Get);
  // One selection per series, each of its own class plus one outside the defaults, so the
  // C-FINDs' association does not serve: the series share the next one.
  std::vector<pacs::Selection> sels;
  for (const auto& se : study.series)
    sels.push_back(
        {study.study_uid,
         {se.uid},
         {},
         {se.files.front().sop_class, "1.2.826.0.1.3680043.10.9998." + std::to_string(se.number)}});
  pacs::Query q;
  q.study_uid = study.study_uid;
  REQUIRE(retrieval->find_studies(q).size() == 1);
  const auto dir = env.new_dir("shared");
  const auto r = retrieval->fetch(sels, dir, {});
  retrieval->close();
  CHECK(r.received == study.instance_count());
  check_received(dir, files_of(study));
  CHECK(proxy.total_connections() == 2);  // the C-FINDs', then one for every series
}
