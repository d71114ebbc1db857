// Test PACS launcher (see pacs_fixture.hpp).
#include "pacs_fixture.hpp"

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

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
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

std::uint16_t bind_any_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("free_port: socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error(std::string("free_port: bind failed: ") + std::strerror(errno));
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

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

}  // namespace

std::uint16_t free_port() {
    static std::mutex mu;
    static std::set<std::uint16_t> handed_out;
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < 50; ++i) {
        const std::uint16_t p = bind_any_port();
        if (handed_out.insert(p).second) return p;
    }
    throw std::runtime_error("free_port: no new free port found");
}

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

std::string PacsFixture::log_path() const { return (fs::path(work_dir_) / "server.log").string(); }

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
    }
}

void PacsFixture::spawn() {
    const fs::path dir(work_dir_);
    std::vector<std::string> argv;
    if (kind_ == PacsKind::Orthanc) {
        argv = {kOrthancBinary, (dir / "orthanc.json").string()};
    } else {
        // Fork mode (the default): --single-process crashes in this DCMTK build.
        // +xr: accept RLE Lossless on C-STORE. Outgoing (C-MOVE/C-GET) dcmqrscp proposes one
        // transfer-syntax list per SOP class, uses the first accepted context whatever the file's
        // syntax, and cannot transcode; so it proposes uncompressed only (the default) and its
        // compressed instances fail as sub-operations. Orthanc transcodes and has no such limit.
        argv = {"dcmqrscp", "-c", (dir / "dcmqrscp.cfg").string(), "+xr", std::to_string(port_)};
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
                             std::to_string(port_) + " did not answer C-ECHO within 30 s; log tail:\n" +
                             tail);
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
    // storescu -R proposes only uncompressed syntaxes unless told which compressed one to add:
    // one run per transfer-syntax group (and per batch, to bound the command line).
    std::map<std::string, std::vector<std::string>> groups;
    for (const auto& f : files) groups[propose_option(f)].push_back(f);
    const std::string log = (fs::path(work_dir_) / "load.log").string();
    for (const auto& [option, group] : groups) {
        for (std::size_t begin = 0; begin < group.size(); begin += kLoadBatch) {
            const std::size_t end = std::min(group.size(), begin + kLoadBatch);
            std::vector<std::string> argv = {"storescu", "-R", "-aet", kLoaderAe, "-aec", ae_title_,
                                             "-to", "10", "-ta", "10", "-td", "60"};
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

}  // namespace p2x::test
