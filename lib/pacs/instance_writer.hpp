// Internal: lands the data set of one incoming C-STORE request as a Part 10 file, bytes as
// received (DCMTK writes the meta header, then streams the data set unchanged): temp file in
// the target directory (or a staging directory), StudyInstanceUID read back, the resolver asked
// where it goes (by study and sender), rename without replacing to
// <dest_dir>/<SOPInstanceUID>.dcm (an instance already there: an identical copy is dropped, a
// different one quarantined, see pacs.hpp); data fsynced at once or later in a batch
// (sync_files). Used by the Storage SCP and by the C-GET SCU.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace p2x::pacs::detail {

// Who sent a C-STORE: the calling AE title of its association and, when the request carries
// them, the C-MOVE it is a sub-operation of (Move Originator AE title and Message ID).
struct StoreCaller {
  std::string calling_ae;
  std::string move_originator_ae;  // "" when the request names none
  Uint16 move_originator_id = 0;
};
StoreCaller caller_of(T_ASC_Association* assoc, const T_DIMSE_C_StoreRQ& req);

// Where an instance goes, or why it is refused (dest_dir empty).
struct StoreTarget {
  std::string dest_dir;
  // Called after the file is in place (final path, SOP Instance UID, size in bytes); also
  // for an identical copy of an instance already there.
  std::function<void(const std::string&, const std::string&, std::uint64_t)> on_stored;
  // Called after a second copy with different content went to the quarantine (its path).
  std::function<void(const std::string&)> on_quarantined;
  // Where such a copy goes (file, name, reason -> its new path); unset: quarantine_file()
  // beside dest_dir.
  std::function<std::string(const std::string&, const std::string&, const std::string&)> keep_apart;
  Uint16 refusal_status = 0xA700;  // with dest_dir empty: the failure status, its comment
  std::string refusal;

  static StoreTarget refuse(Uint16 status, std::string why) {
    StoreTarget t;
    t.refusal_status = status;
    t.refusal = std::move(why);
    return t;
  }
};

// Where instances of a study sent by `caller` go (or why not).
using StoreResolver =
    std::function<StoreTarget(const std::string& study_uid, const StoreCaller& caller)>;

struct StoreOutcome {
  bool network_ok = true;  // false: the association is broken (cond says why)
  OFCondition cond;
  Uint16 status = 0;    // status sent in the C-STORE-RSP
  std::string comment;  // ErrorComment sent with a failure status
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

// Copies `from` to `to` (created, never replacing: fails if it exists) and fsyncs it, for
// moves across filesystems. Returns false with `error` set (nothing left at `to`).
bool copy_new_file(const std::string& from, const std::string& to, std::string& error);
// Renames `from` to `to` unless `to` exists (errno EEXIST then), atomically. false with errno
// set on failure (EXDEV across filesystems).
bool rename_new(const std::string& from, const std::string& to);
// A hidden temp file name in dir for an instance: ".p2x-<pid>-<n>-<sop>.part".
std::string temp_path(const std::string& dir, const std::string& sop);

// fsync a directory (after renames into it). Returns false on error (logged).
bool fsync_dir(const std::string& dir);

// fsync the files (a few threads: the journal commits them together), then their directory.
// Much cheaper after the fact than one fsync per arriving file. Returns the first error, or
// "" when all is durable.
std::string sync_files(const std::vector<std::string>& files, const std::string& dir);

}  // namespace p2x::pacs::detail
