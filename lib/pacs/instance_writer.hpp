// Internal: lands the data set of one incoming C-STORE request as a Part 10 file, bytes as
// received (DCMTK writes the meta header, then streams the data set unchanged): temp file in
// the target directory (or a staging directory), StudyInstanceUID read back, rename to
// <dest_dir>/<SOPInstanceUID>.dcm; data fsynced at once or later in a batch (sync_files).
// Used by the Storage SCP and by the C-GET SCU.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace p2x::pacs::detail {

struct StoreTarget {
    std::string dest_dir;
    // Called after the file is in place (final path, SOP Instance UID, size in bytes).
    std::function<void(const std::string&, const std::string&, std::uint64_t)> on_stored;
};

// Where instances of a study go; nullopt refuses them.
using StoreResolver = std::function<std::optional<StoreTarget>(const std::string& study_uid)>;

struct StoreOutcome {
    bool network_ok = true;   // false: the association is broken (cond says why)
    OFCondition cond;
    Uint16 status = 0;        // status sent in the C-STORE-RSP
    std::string comment;      // ErrorComment sent with a failure status
    std::string study_uid, sop_uid, path;
    std::uint64_t bytes = 0;  // bytes written for the data set (also when refused afterwards)
};

// Receives the data set of `req` (command already received), stores it and sends the C-STORE
// response. temp_dir: where the data set is received first (the route's directory when known
// in advance, else a staging directory).
// fsync_now: fsync the file's data before the rename and the response (~4 ms per file on the
// test VM); otherwise the caller makes the files durable later with sync_files().
StoreOutcome store_instance(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                            T_DIMSE_C_StoreRQ& req, const std::string& temp_dir,
                            const StoreResolver& resolve, int dimse_timeout_s, bool fsync_now);

// Answers `req` (command already received) with a failure status and comment without writing
// anything: its data set is read and dropped. For a refusal known before the data arrives.
StoreOutcome refuse_instance(T_ASC_Association* assoc, T_ASC_PresentationContextID pres_id,
                             T_DIMSE_C_StoreRQ& req, Uint16 status, const std::string& comment,
                             int dimse_timeout_s);

// fsync a directory (after renames into it). Returns false on error (logged).
bool fsync_dir(const std::string& dir);

// fsync the files (a few threads: the journal commits them together), then their directory.
// Much cheaper after the fact than one fsync per arriving file. Returns the first error, or
// "" when all is durable.
std::string sync_files(const std::vector<std::string>& files, const std::string& dir);

}  // namespace p2x::pacs::detail
