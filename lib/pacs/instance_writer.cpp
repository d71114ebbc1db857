// Lands one incoming C-STORE data set as a file (see instance_writer.hpp).
#include "pacs/instance_writer.hpp"

#include "pacs/association.hpp"
#include "pacs/received_check.hpp"
#include "text/text.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmf.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace p2x::pacs::detail {

namespace {

constexpr Uint16 kStatusOutOfResources = 0xA700;
constexpr Uint16 kStatusDataSetMismatch = 0xA900;
constexpr Uint16 kStatusCannotUnderstand = 0xC000;

std::string temp_path(const std::string& dir, const std::string& sop) {
    static std::atomic<unsigned long> counter{0};
    return dir + "/.p2x-" + std::to_string(::getpid()) + "-" +
           std::to_string(counter.fetch_add(1)) + "-" + sop + ".part";
}

std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

bool fsync_file(const std::string& path, std::uint64_t& size, std::string& error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = errno_text("open", path);
        return false;
    }
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0 && ::fsync(fd) == 0;
    if (!ok) error = errno_text("fsync", path);
    size = static_cast<std::uint64_t>(st.st_size);
    ::close(fd);
    return ok;
}

bool sync_or_stat(const std::string& path, bool do_sync, std::uint64_t& size, std::string& error) {
    if (do_sync) return fsync_file(path, size, error);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        error = errno_text("stat", path);
        return false;
    }
    size = static_cast<std::uint64_t>(st.st_size);
    return true;
}

// Copy for renames across filesystems (staging dir elsewhere): copy + fsync + rename.
bool copy_file(const std::string& from, const std::string& to, std::string& error) {
    const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        error = errno_text("open", from);
        return false;
    }
    const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        error = errno_text("create", to);
        ::close(in);
        return false;
    }
    std::vector<char> buf(1 << 20);
    bool ok = true;
    for (;;) {
        const ssize_t n = ::read(in, buf.data(), buf.size());
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            ok = false;
            error = errno_text("read", from);
            break;
        }
        ssize_t off = 0;
        while (off < n) {
            const ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                ok = false;
                error = errno_text("write", to);
                break;
            }
            off += w;
        }
        if (!ok) break;
    }
    if (ok && ::fsync(out) != 0) {
        ok = false;
        error = errno_text("fsync", to);
    }
    ::close(out);
    ::close(in);
    return ok;
}

// Moves the fsynced temp file to its final name (replacing an earlier copy).
bool place_file(const std::string& tmp, const std::string& dest_dir, const std::string& final_path,
                const std::string& sop, std::string& error) {
    if (::rename(tmp.c_str(), final_path.c_str()) == 0) return true;
    if (errno != EXDEV) {
        error = errno_text("rename to", final_path);
        return false;
    }
    const std::string tmp2 = temp_path(dest_dir, sop);
    if (!copy_file(tmp, tmp2, error)) {
        ::unlink(tmp2.c_str());
        return false;
    }
    if (::rename(tmp2.c_str(), final_path.c_str()) != 0) {
        error = errno_text("rename to", final_path);
        ::unlink(tmp2.c_str());
        return false;
    }
    ::unlink(tmp.c_str());
    return true;
}

OFCondition send_response(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                          const T_DIMSE_C_StoreRQ& req, Uint16 status,
                          const std::string& comment) {
    T_DIMSE_C_StoreRSP rsp;
    std::memset(&rsp, 0, sizeof(rsp));
    rsp.MessageIDBeingRespondedTo = req.MessageID;
    OFStandard::strlcpy(rsp.AffectedSOPClassUID, req.AffectedSOPClassUID,
                        sizeof(rsp.AffectedSOPClassUID));
    OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, req.AffectedSOPInstanceUID,
                        sizeof(rsp.AffectedSOPInstanceUID));
    rsp.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
    rsp.DataSetType = DIMSE_DATASET_NULL;
    rsp.DimseStatus = status;
    DcmDataset detail;
    DcmDataset* detail_ptr = nullptr;
    if (status != 0 && !comment.empty()) {
        detail.putAndInsertString(DCM_ErrorComment, comment.substr(0, 64).c_str());
        detail_ptr = &detail;
    }
    T_DIMSE_C_StoreRQ req_copy = req;
    return DIMSE_sendStoreResponse(assoc, pres_id, &req_copy, &rsp, detail_ptr);
}

}  // namespace

bool fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        spdlog::warn("pacs: cannot open directory {} to fsync it: {}", dir, std::strerror(errno));
        return false;
    }
    const bool ok = ::fsync(fd) == 0;
    if (!ok) spdlog::warn("pacs: fsync of directory {} failed: {}", dir, std::strerror(errno));
    ::close(fd);
    return ok;
}

std::string sync_files(const std::vector<std::string>& files, const std::string& dir) {
    std::atomic<std::size_t> next{0};
    std::mutex mutex;
    std::string first_error;
    const auto work = [&] {
        for (;;) {
            const std::size_t i = next.fetch_add(1);
            if (i >= files.size()) return;
            std::uint64_t size = 0;
            std::string error;
            if (!fsync_file(files[i], size, error)) {
                std::lock_guard<std::mutex> lock(mutex);
                if (first_error.empty()) first_error = error;
            }
        }
    };
    const std::size_t n_threads = std::min<std::size_t>(8, files.size());
    std::vector<std::thread> threads;
    for (std::size_t t = 1; t < n_threads; ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
    if (!fsync_dir(dir) && first_error.empty()) first_error = "fsync of directory " + dir + " failed";
    return first_error;
}

namespace {

// One incoming C-STORE being handled: where it came from and what becomes of it.
struct Incoming {
    T_ASC_Association* assoc;
    T_ASC_PresentationContextID pres_id;
    T_DIMSE_C_StoreRQ& req;
    int dimse_timeout_s;
    StoreOutcome out;

    // Sends the C-STORE response (its data set dealt with); the outcome is final.
    StoreOutcome answer(Uint16 status, const std::string& comment) {
        out.status = status;
        out.comment = comment;
        out.cond = send_response(assoc, pres_id, req, status, comment);
        out.network_ok = out.cond.good();
        return out;
    }

    // The association broke: no response can be sent.
    StoreOutcome broken(const OFCondition& cond) {
        out.cond = cond;
        out.network_ok = false;
        return out;
    }

    // Reads the data set into nowhere, then answers.
    StoreOutcome skip_and_answer(Uint16 status, const std::string& comment) {
        DIC_UL bytes = 0, pdvs = 0;
        const OFCondition cond =
            DIMSE_ignoreDataSet(assoc, DIMSE_NONBLOCKING, dimse_timeout_s, &bytes, &pdvs);
        if (cond.bad()) return broken(cond);
        return answer(status, comment);
    }
};

// Step 1: the data set's bytes as received into tmp, behind a meta header written by DCMTK
// (fsynced when fsync_now). nullopt when the file is complete (its size in `size`), else the
// final outcome.
std::optional<StoreOutcome> receive_file(Incoming& in, const std::string& tmp, bool fsync_now,
                                         std::uint64_t& size) {
    DcmOutputFileStream* stream = nullptr;
    OFCondition cond =
        DIMSE_createFilestream(tmp.c_str(), &in.req, in.assoc, in.pres_id, OFTrue, &stream);
    if (cond.bad()) {
        spdlog::error("pacs: cannot create {}: {}", tmp, cond.text());
        return in.skip_and_answer(kStatusOutOfResources, "cannot create file at the receiver");
    }
    T_ASC_PresentationContextID data_pres_id = in.pres_id;
    cond = DIMSE_receiveDataSetInFile(in.assoc, DIMSE_NONBLOCKING, in.dimse_timeout_s,
                                      &data_pres_id, stream, nullptr, nullptr);
    const bool stream_ok = stream->good();
    delete stream;
    if (cond.bad()) {
        ::unlink(tmp.c_str());
        return in.broken(cond);
    }
    std::string error;
    if (!stream_ok || !sync_or_stat(tmp, fsync_now, size, error)) {
        ::unlink(tmp.c_str());
        spdlog::error("pacs: writing {} failed: {}", tmp, error.empty() ? "stream error" : error);
        return in.answer(kStatusOutOfResources, "write failed at the receiver");
    }
    return std::nullopt;
}

// Step 2: which study is it? Sets out.study_uid; nullopt, or the final outcome refusing a file
// that cannot be read, does not hold the instance the request announced, or carries a Study,
// Series or SOP Instance UID that is not a valid UID (check_received_file; tmp removed).
std::optional<StoreOutcome> read_study(Incoming& in, const std::string& tmp) {
    const ReceivedCheck check = check_received_file(tmp, in.out.sop_uid);
    in.out.study_uid = check.study_uid;
    if (check.ok()) return std::nullopt;
    ::unlink(tmp.c_str());
    const Uint16 status = check.fault == ReceivedFault::SopMismatch ? kStatusDataSetMismatch
                                                                      : kStatusCannotUnderstand;
    return in.answer(status, check.error);
}

}  // namespace

StoreOutcome store_instance(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                            T_DIMSE_C_StoreRQ& req, const std::string& temp_dir,
                            const StoreResolver& resolve, int dimse_timeout_s, bool fsync_now) {
    Incoming in{assoc, pres_id, req, dimse_timeout_s, {}};
    StoreOutcome& out = in.out;
    out.sop_uid = req.AffectedSOPInstanceUID;
    if (!text::is_valid_uid(out.sop_uid))
        return in.skip_and_answer(kStatusCannotUnderstand, "invalid Affected SOP Instance UID");

    const std::string tmp = temp_path(temp_dir, out.sop_uid);
    std::uint64_t size = 0;
    if (auto done = receive_file(in, tmp, fsync_now, size)) return *done;
    out.bytes = size;
    if (auto done = read_study(in, tmp)) return *done;

    // Step 3: route and place it.
    const auto target = resolve(out.study_uid);
    if (!target) {
        ::unlink(tmp.c_str());
        return in.answer(kStatusOutOfResources, "no retrieval waiting for this study here");
    }
    out.path = target->dest_dir + "/" + out.sop_uid + ".dcm";
    std::string error;
    if (!place_file(tmp, target->dest_dir, out.path, out.sop_uid, error)) {
        ::unlink(tmp.c_str());
        spdlog::error("pacs: storing {} failed: {}", out.path, error);
        out.path.clear();
        return in.answer(kStatusOutOfResources, "write failed at the receiver");
    }
    if (target->on_stored) target->on_stored(out.path, out.sop_uid, size);
    return in.answer(0x0000, "");
}

StoreOutcome refuse_instance(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                             T_DIMSE_C_StoreRQ& req, Uint16 status, const std::string& comment,
                             int dimse_timeout_s) {
    Incoming in{assoc, pres_id, req, dimse_timeout_s, {}};
    in.out.sop_uid = req.AffectedSOPInstanceUID;
    return in.skip_and_answer(status, comment);
}

}  // namespace p2x::pacs::detail
