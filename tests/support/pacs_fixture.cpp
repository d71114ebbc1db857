// Test PACS launcher (see pacs_fixture.hpp).
#include "pacs_fixture.hpp"

#include "ports.hpp"
#include "process.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>
#include <dcmtk/oflog/oflog.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fs = std::filesystem;

namespace p2x::test {

namespace {

constexpr const char* kOrthancBinary = "/usr/sbin/Orthanc";
constexpr const char* kLoaderAe = "P2XLOADER";
constexpr const char* kProbeAe = "P2XPROBE";
constexpr std::size_t kLoadBatch = 400;

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream os(path, std::ios::trunc);
  os << text;
  if (!os) throw std::runtime_error("pacs fixture: cannot write " + path.string());
}

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

void append_marker(const std::string& log, const std::string& text) {
  std::ofstream os(log, std::ios::app);
  os << "=== p2x fixture: " << text << " at " << now_text() << " ===\n";
}

// storescu's proposal option for a file's transfer syntax ("" = uncompressed, the default).
std::string propose_option(const std::string& path) {
  DcmFileFormat ff;
  if (ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_metaOnly).bad())
    throw std::runtime_error("pacs fixture: cannot read DICOM file " + path);
  OFString ts;
  ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
  static const std::map<std::string, std::string> options = {
      {UID_LittleEndianExplicitTransferSyntax, ""},
      {UID_LittleEndianImplicitTransferSyntax, ""},
      {UID_BigEndianExplicitTransferSyntax, ""},
      {UID_DeflatedExplicitVRLittleEndianTransferSyntax, "-xd"},
      {UID_RLELosslessTransferSyntax, "-xr"},
      {UID_JPEGProcess14SV1TransferSyntax, "-xs"},
      {UID_JPEGProcess1TransferSyntax, "-xy"},
      {UID_JPEGProcess2_4TransferSyntax, "-xx"},
      {UID_JPEG2000LosslessOnlyTransferSyntax, "-xv"},
      {UID_JPEG2000TransferSyntax, "-xw"},
      {UID_JPEGLSLosslessTransferSyntax, "-xt"},
      {UID_JPEGLSLossyTransferSyntax, "-xu"},
  };
  const auto it = options.find(ts.c_str());
  if (it == options.end())
    throw std::runtime_error("pacs fixture: no storescu option for transfer syntax '" +
                             std::string(ts.c_str()) + "' of " + path);
  return it->second;
}

// The storage SOP classes dcmqrscp accepts and sends (its association profiles, see
// write_dcmqrscp_profiles): the classes of the generator (testdata.hpp) and of common studies,
// including the private Siemens CSA Non-Image class, which dcmqrscp's built-in lists lack.
const char* const kDcmqrscpStorageClasses[] = {
    UID_MRImageStorage,
    UID_EnhancedMRImageStorage,
    UID_EnhancedMRColorImageStorage,
    UID_MRSpectroscopyStorage,
    UID_CTImageStorage,
    UID_EnhancedCTImageStorage,
    UID_UltrasoundImageStorage,
    UID_UltrasoundMultiframeImageStorage,
    UID_SecondaryCaptureImageStorage,
    UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage,
    UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage,
    UID_MultiframeTrueColorSecondaryCaptureImageStorage,
    UID_GrayscaleSoftcopyPresentationStateStorage,
    UID_ColorSoftcopyPresentationStateStorage,
    UID_KeyObjectSelectionDocumentStorage,
    UID_BasicTextSRStorage,
    UID_EnhancedSRStorage,
    UID_ComprehensiveSRStorage,
    UID_Comprehensive3DSRStorage,
    UID_XRayRadiationDoseSRStorage,
    UID_EncapsulatedPDFStorage,
    UID_EncapsulatedCDAStorage,
    UID_RTImageStorage,
    UID_RTDoseStorage,
    UID_RTStructureSetStorage,
    UID_RTPlanStorage,
    UID_RTIonPlanStorage,
    UID_RTBeamsTreatmentRecordStorage,
    UID_PositronEmissionTomographyImageStorage,
    UID_EnhancedPETImageStorage,
    UID_NuclearMedicineImageStorage,
    UID_ComputedRadiographyImageStorage,
    UID_DigitalXRayImageStorageForPresentation,
    UID_DigitalXRayImageStorageForProcessing,
    UID_DigitalMammographyXRayImageStorageForPresentation,
    UID_DigitalMammographyXRayImageStorageForProcessing,
    UID_XRayAngiographicImageStorage,
    UID_EnhancedXAImageStorage,
    UID_XRayRadiofluoroscopicImageStorage,
    UID_RawDataStorage,
    UID_SegmentationStorage,
    UID_SpatialRegistrationStorage,
    UID_VLPhotographicImageStorage,
    "1.3.12.2.1107.5.9.1",  // Siemens CSA Non-Image (private)
};

// dcmqrscp's association profiles (DCMTK's association configuration file, asconfig.txt):
// "Incoming" accepts echo, query/retrieve and storage of kDcmqrscpStorageClasses in either role
// (C-STORE into it, and the storage contexts a C-GET SCU proposes as SCP), RLE preferred so an
// RLE file stays RLE as before; "Outgoing" proposes those classes uncompressed on a C-MOVE's
// sub-association (dcmqrscp cannot transcode: its compressed instances fail there, as they
// did with its built-in lists).
std::string dcmqrscp_profiles() {
  std::ostringstream os;
  os << "# generated by p2x test fixture\n[[TransferSyntaxes]]\n"
     << "[Uncompressed]\nTransferSyntax1 = LocalEndianExplicit\n"
     << "TransferSyntax2 = OppositeEndianExplicit\nTransferSyntax3 = LittleEndianImplicit\n"
     << "[RLEOrUncompressed]\nTransferSyntax1 = RLELossless\n"
     << "TransferSyntax2 = LocalEndianExplicit\nTransferSyntax3 = OppositeEndianExplicit\n"
     << "TransferSyntax4 = LittleEndianImplicit\n\n[[PresentationContexts]]\n[Incoming]\n";
  const char* const services[] = {UID_VerificationSOPClass,
                                  UID_FINDStudyRootQueryRetrieveInformationModel,
                                  UID_MOVEStudyRootQueryRetrieveInformationModel,
                                  UID_GETStudyRootQueryRetrieveInformationModel,
                                  UID_FINDPatientRootQueryRetrieveInformationModel,
                                  UID_MOVEPatientRootQueryRetrieveInformationModel,
                                  UID_GETPatientRootQueryRetrieveInformationModel};
  int n = 0;
  for (const char* uid : services)
    os << "PresentationContext" << ++n << " = " << uid << "\\Uncompressed\n";
  for (const char* uid : kDcmqrscpStorageClasses)
    os << "PresentationContext" << ++n << " = " << uid << "\\RLEOrUncompressed\n";
  os << "[Outgoing]\n";
  n = 0;
  for (const char* uid : kDcmqrscpStorageClasses)
    os << "PresentationContext" << ++n << " = " << uid << "\\Uncompressed\n";
  os << "\n[[SCPSCURoleSelection]]\n[StorageBothRoles]\n";
  n = 0;
  for (const char* uid : kDcmqrscpStorageClasses) os << "Role" << ++n << " = " << uid << "\\BOTH\n";
  os << "\n[[Profiles]]\n[Incoming]\nPresentationContexts = Incoming\n"
     << "SCPSCURoleSelection = StorageBothRoles\n[Outgoing]\nPresentationContexts = Outgoing\n";
  return os.str();
}

// SOP class and transfer syntax of a Part 10 file.
std::pair<std::string, std::string> class_and_syntax(const std::string& path) {
  DcmFileFormat ff;
  if (ff.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_metaOnly).bad())
    throw std::runtime_error("pacs fixture: cannot read DICOM file " + path);
  OFString cls, ts;
  ff.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, cls);
  ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
  return {cls.c_str(), ts.c_str()};
}

// Files of a SOP class DCMTK does not know as storage (private ones): storescu refuses them.
bool storescu_refuses(const std::string& path) {
  return !dcmIsaStorageSOPClassUID(class_and_syntax(path).first.c_str(), ESSC_All);
}

}  // namespace

const char* to_string(PacsKind kind) {
  return kind == PacsKind::Orthanc ? "orthanc" : "dcmqrscp";
}

PacsKind parse_pacs_kind(const std::string& name) {
  if (name == "orthanc") return PacsKind::Orthanc;
  if (name == "dcmqrscp") return PacsKind::Dcmqrscp;
  throw std::invalid_argument("unknown PACS kind '" + name + "' (orthanc|dcmqrscp)");
}

bool echo(std::uint16_t port, const std::string& called_ae, int timeout_s) {
  const std::string t = std::to_string(timeout_s);
  SpawnOptions o;
  o.own_process_group = false;
  return run({"echoscu", "-q", "-to", t, "-ta", t, "-td", t, "-aet", kProbeAe, "-aec", called_ae,
              "127.0.0.1", std::to_string(port)},
             o, (timeout_s + 2) * 1000) == 0;
}

namespace {

// Gone = no such process, or a zombie waiting for a parent that is not us.
bool gone(pid_t pid) {
  ::waitpid(pid, nullptr, WNOHANG);  // reaps it if it is our child
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

}  // namespace

bool stop_pid(pid_t pid, int timeout_ms) {
  if (pid <= 1) return false;
  const pid_t target = ::getpgid(pid) == pid ? -pid : pid;
  if (::kill(target, SIGTERM) != 0 && errno == ESRCH) return true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (gone(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(target, SIGKILL);
  for (int i = 0; i < 100; ++i) {
    if (gone(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

PacsFixture::PacsFixture(PacsKind kind, const std::string& work_dir,
                         std::vector<MoveDestination> dests, std::uint16_t port)
    : kind_(kind),
      work_dir_(fs::absolute(work_dir).string()),
      dests_(std::move(dests)),
      port_(port ? port : free_port()),
      ae_title_(kind == PacsKind::Orthanc ? "P2XORTHANC" : "P2XQRSCP") {
  if (work_dir_.find_first_of(" \t\"") != std::string::npos)
    throw std::invalid_argument("pacs fixture: work dir must not contain blanks or quotes");
  fs::create_directories(fs::path(work_dir_) / "storage");
}

PacsFixture::~PacsFixture() {
  if (!detached_) kill_hard();
}

void PacsFixture::set_http_enabled(bool enabled) {
  if (kind_ != PacsKind::Orthanc) return;
  if (enabled && http_port_ == 0) http_port_ = free_port();
  if (!enabled) http_port_ = 0;
}

std::string PacsFixture::label() const {
  return std::string(to_string(kind_)) + (stock_ ? "-stock" : "");
}

std::string PacsFixture::log_path() const {
  return (fs::path(work_dir_) / "server.log").string();
}

std::string PacsFixture::log_tail(std::size_t max_bytes) const {
  return file_tail(log_path(), max_bytes);
}

void PacsFixture::write_config() {
  const fs::path dir(work_dir_);
  const std::string storage = (dir / "storage").string();
  if (kind_ == PacsKind::Orthanc) {
    nlohmann::json modalities = nlohmann::json::object();
    for (std::size_t i = 0; i < dests_.size(); ++i)
      modalities["dest" + std::to_string(i)] = {dests_[i].ae_title, "127.0.0.1", dests_[i].port};
    const nlohmann::json cfg = {
        {"Name", "p2x-test-orthanc"},
        {"StorageDirectory", storage},
        {"IndexDirectory", storage},
        {"StorageCompression", false},
        {"Plugins", nlohmann::json::array()},
        {"LuaScripts", nlohmann::json::array()},
        {"HttpServerEnabled", http_port_ != 0},
        {"HttpPort", http_port_ != 0 ? http_port_ : 8042},
        {"RemoteAccessAllowed", false},
        {"AuthenticationEnabled", false},
        {"HttpThreadsCount", 4},
        {"WebDavEnabled", false},
        {"OrthancExplorerEnabled", false},
        {"DicomServerEnabled", true},
        {"DicomAet", ae_title_},
        {"DicomPort", port_},
        {"DicomCheckCalledAet", false},
        {"DicomThreadsCount", 8},
        {"DicomModalities", modalities},
        {"DicomAlwaysAllowEcho", true},
        {"DicomAlwaysAllowStore", true},
        {"DicomAlwaysAllowFind", true},
        {"DicomAlwaysAllowGet", true},
        {"DicomAlwaysAllowMove", true},
        {"DicomCheckModalityHost", false},
        {"DicomAssociationCloseDelay", 0},
        {"DicomScuTimeout", 10},
        {"DicomScpTimeout", 30},
        {"UnknownSopClassAccepted", true},
        {"SaveJobs", false},
        {"JobsHistorySize", 10},
        {"SyncStorageArea", false},
        {"MetricsEnabled", false},
        {"StorageAccessOnFind", "Always"},
        {"LimitFindResults", 0},
        {"LimitFindInstances", 0},
        {"OverwriteInstances", false},
    };
    write_file(dir / "orthanc.json", cfg.dump(2) + "\n");
  } else {
    std::ostringstream os;
    os << "# generated by p2x test fixture\n"
       << "NetworkTCPPort  = " << port_ << "\n"
       << "MaxPDUSize      = 16384\n"
       << "MaxAssociations = 32\n\n"
       << "HostTable BEGIN\n";
    for (std::size_t i = 0; i < dests_.size(); ++i)
      os << "p2xdest" << i << " = (" << dests_[i].ae_title << ", localhost, " << dests_[i].port
         << ")\n";
    os << "HostTable END\n\n"
       << "VendorTable BEGIN\nVendorTable END\n\n"
       << "AETable BEGIN\n"
       // 500 studies and 1 GB per study are dcmqrscp's upper limits; beyond them it deletes.
       << ae_title_ << "  " << storage << "  RW  (500, 1024mb)  ANY\n"
       << "AETable END\n";
    write_file(dir / "dcmqrscp.cfg", os.str());
    write_file(dir / "dcmqrscp-profiles.cfg", dcmqrscp_profiles());
  }
}

void PacsFixture::spawn() {
  const fs::path dir(work_dir_);
  std::vector<std::string> argv;
  if (kind_ == PacsKind::Orthanc) {
    argv = {kOrthancBinary, (dir / "orthanc.json").string()};
  } else {
    // Fork mode (the default): --single-process crashes in this DCMTK build.
    // -xf: the association profiles of dcmqrscp_profiles() (RLE accepted on C-STORE; the
    // private classes it stores through dcmqridx accepted for C-GET and proposed for C-MOVE).
    // Outgoing (C-MOVE/C-GET) dcmqrscp uses the first accepted context for a SOP class
    // whatever the file's syntax and cannot transcode, so its compressed instances fail as
    // sub-operations. Orthanc transcodes and has no such limit.
    argv = {"dcmqrscp",
            "-c",
            (dir / "dcmqrscp.cfg").string(),
            "-xf",
            (dir / "dcmqrscp-profiles.cfg").string(),
            "Incoming",
            "Outgoing",
            std::to_string(port_)};
  }
  SpawnOptions o;
  o.log_path = log_path();
  o.own_process_group = true;
  o.die_with_parent = !detached_;
  o.tcp_nodelay = !stock_;
  append_marker(o.log_path, "start " + label() + " port " + std::to_string(port_) +
                                (stock_ ? " (no TCP_NODELAY: Nagle on)" : " (TCP_NODELAY=1)"));
  pid_ = p2x::test::spawn(argv, o);
}

bool PacsFixture::reap(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const pid_t r = ::waitpid(pid_, nullptr, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void PacsFixture::wait_ready() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      throw std::runtime_error(std::string("pacs fixture: ") + to_string(kind_) +
                               " exited during start-up; log tail:\n" + log_tail());
    }
    if (echo(port_, ae_title_, 1)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string tail = log_tail();
  kill_hard();
  throw std::runtime_error(std::string("pacs fixture: ") + to_string(kind_) + " on port " +
                           std::to_string(port_) +
                           " did not answer C-ECHO within 30 s; log tail:\n" + tail);
}

void PacsFixture::start() {
  if (running()) return;
  write_config();
  spawn();
  wait_ready();
}

bool PacsFixture::running() const {
  if (pid_ <= 0) return false;
  const pid_t r = ::waitpid(pid_, nullptr, WNOHANG);
  if (r == 0) return true;
  pid_ = -1;  // exited (and now reaped)
  return false;
}

void PacsFixture::stop() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);  // the whole group: dcmqrscp's association children too
  if (!reap(10000)) {
    ::kill(-pid_, SIGKILL);
    reap(5000);
  }
  append_marker(log_path(), "stopped");
  pid_ = -1;
}

void PacsFixture::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  reap(5000);
  try {
    append_marker(log_path(), "killed (SIGKILL)");
  } catch (...) {
  }
  pid_ = -1;
}

void PacsFixture::restart() {
  stop();
  start();
}

void PacsFixture::load(const std::vector<std::string>& files) {
  if (!running()) throw std::runtime_error("pacs fixture: load() needs a running server");
  std::vector<std::string> standard, private_classes;
  for (const auto& f : files) (storescu_refuses(f) ? private_classes : standard).push_back(f);
  load_with_storescu(standard);
  if (private_classes.empty()) return;
  if (kind_ == PacsKind::Orthanc) {
    store_private(private_classes);  // Orthanc accepts them (UnknownSopClassAccepted)
  } else {
    register_private(private_classes);  // dcmqrscp refuses them on C-STORE
  }
}

void PacsFixture::load_with_storescu(const std::vector<std::string>& files) {
  // storescu -R proposes only uncompressed syntaxes unless told which compressed one to add:
  // one run per transfer-syntax group (and per batch, to bound the command line).
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& f : files) groups[propose_option(f)].push_back(f);
  const std::string log = (fs::path(work_dir_) / "load.log").string();
  for (const auto& [option, group] : groups) {
    for (std::size_t begin = 0; begin < group.size(); begin += kLoadBatch) {
      const std::size_t end = std::min(group.size(), begin + kLoadBatch);
      std::vector<std::string> argv = {"storescu", "-R", "-aet", kLoaderAe, "-aec", ae_title_,
                                       "-to",      "10", "-ta",  "10",      "-td",  "60"};
      if (!option.empty()) argv.push_back(option);
      argv.push_back("127.0.0.1");
      argv.push_back(std::to_string(port_));
      argv.insert(argv.end(), group.begin() + static_cast<std::ptrdiff_t>(begin),
                  group.begin() + static_cast<std::ptrdiff_t>(end));
      { std::ofstream(log, std::ios::trunc); }
      SpawnOptions o;
      o.log_path = log;
      o.own_process_group = true;
      const int rc = run(argv, o, 600000);
      const std::string out = file_tail(log, 1 << 20);
      const bool errors = out.rfind("E: ", 0) == 0 || out.find("\nE: ") != std::string::npos;
      if (rc != 0 || errors)
        throw std::runtime_error("pacs fixture: storescu into " + std::string(to_string(kind_)) +
                                 " failed (exit " + std::to_string(rc) + "); output tail:\n" +
                                 file_tail(log, 3000) + "\nserver log tail:\n" + log_tail(2000));
    }
  }
}

void PacsFixture::store_private(const std::vector<std::string>& files) {
  // storescu refuses SOP classes DCMTK does not know as storage: C-STORE them with DcmSCU, one
  // presentation context per (class, transfer syntax) of the files.
  OFLog::getLogger("dcmtk.dcmnet").setLogLevel(OFLogger::WARN_LOG_LEVEL);  // DcmSCU's INFO chatter
  DcmSCU scu;
  scu.setAETitle(kLoaderAe);
  scu.setPeerAETitle(ae_title_.c_str());
  scu.setPeerHostName("127.0.0.1");
  scu.setPeerPort(port_);
  scu.setACSETimeout(10);
  scu.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
  scu.setDIMSETimeout(60);
  std::vector<std::pair<std::string, std::string>> kinds;
  std::set<std::pair<std::string, std::string>> proposed;
  for (const auto& f : files) {
    kinds.push_back(class_and_syntax(f));
    if (!proposed.insert(kinds.back()).second) continue;
    OFList<OFString> syntaxes;
    syntaxes.push_back(kinds.back().second.c_str());
    scu.addPresentationContext(kinds.back().first.c_str(), syntaxes);
  }
  const auto fail = [&](const std::string& what) {
    throw std::runtime_error("pacs fixture: C-STORE of a private SOP class into " +
                             std::string(to_string(kind_)) + ": " + what + "\nserver log tail:\n" +
                             log_tail(2000));
  };
  if (scu.initNetwork().bad() || scu.negotiateAssociation().bad()) fail("association refused");
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto pres =
        scu.findPresentationContextID(kinds[i].first.c_str(), kinds[i].second.c_str());
    Uint16 status = 0xFFFF;
    const OFCondition cond =
        pres == 0 ? EC_IllegalCall : scu.sendSTORERequest(pres, files[i].c_str(), nullptr, status);
    if (cond.bad() || status != 0) {
      if (scu.isConnected()) scu.abortAssociation();
      fail(files[i] + ": " + (cond.bad() ? cond.text() : "status " + std::to_string(status)));
    }
  }
  scu.releaseAssociation();
}

void PacsFixture::register_private(const std::vector<std::string>& files) {
  // dcmqrscp refuses C-STOREs of SOP classes DCMTK does not know as storage (a fixed check in
  // its storage SCP): copy the files into its storage area and register them in its index
  // with dcmqridx, as an archive would have them from elsewhere. It then finds, sends (see
  // dcmqrscp_profiles) and counts them like the rest.
  const fs::path storage = fs::path(work_dir_) / "storage";
  std::vector<std::string> argv = {"dcmqridx", storage.string()};
  for (const auto& f : files) {
    const fs::path copy = storage / ("PRIV_" + fs::path(f).parent_path().filename().string() + "_" +
                                     fs::path(f).filename().string());
    fs::copy_file(f, copy, fs::copy_options::overwrite_existing);
    argv.push_back(copy.string());
  }
  const std::string log = (fs::path(work_dir_) / "load.log").string();
  { std::ofstream(log, std::ios::trunc); }
  SpawnOptions o;
  o.log_path = log;
  const int rc = run(argv, o, 60000);
  const std::string out = file_tail(log, 1 << 20);
  if (rc != 0 || out.find("E: ") != std::string::npos)
    throw std::runtime_error("pacs fixture: dcmqridx failed (exit " + std::to_string(rc) +
                             "): " + file_tail(log, 3000));
}

}  // namespace p2x::test
