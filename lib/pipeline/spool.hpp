// pipeline/spool: the spool — the folder where studies wait between the PACS and XNAT — and its
// one owner, Spool: per-item folders, the Storage SCP's staging folder, the quarantine, the
// validated file lists, the room left, removal, and the clean-up of a killed run's leftovers.
// Below it, whether the spool's files survived the last stop.
//
// Spool files are not fsynced as they arrive: the spool is a cache of the PACS, and making
// every retrieved byte durable costs more than the retrieval itself on an ordinary disk. A
// crash or kill -9 loses nothing (the files are in the page cache); only a power loss or a
// kernel crash can leave files missing, short or zero-filled. Those are the restarts in a new
// boot that did not follow a clean stop. Two marks in the spool directory tell them apart:
//   .boot-in-use  the boot id of the last daemon that used the spool (written at start-up)
//   .boot-synced  the same id, written at a clean stop after syncfs() of the spool
// When the spool cannot be trusted, the daemon discards the files of every study that is not
// finished and retrieves them again (store::Store::requeue_unfinished); the job store itself
// is durable (SQLite, fsynced), so no row is lost and nothing is uploaded twice: the push
// first asks XNAT what it already holds.
//
// Layout: <spool>/<item id>/ holds a study's files as <SOPInstanceUID>.dcm (what is pushed);
// <spool>/.quarantine/<item id>/ what arrived for it but must never be pushed (a second copy of
// an instance with different content, instances of series the PACS did not report or of another
// study), each with its reason (pacs::quarantine_file). The quarantine is part of the item's
// spool: it goes when the item's directory goes (verified, cancelled, or discarded after a
// power loss) and never otherwise, so an operator can look at it while the item is open or
// failed; the item's events name what it holds and why. <spool>/.incoming/ is the Storage SCP's
// staging directory; .boot-* are the marks below.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "pacs/received_sink.hpp"
#include "validate/validate.hpp"

namespace p2x::store {
class Store;
}

namespace p2x::pipeline {

// The spool at one root. Thread-safe as far as the file system is: each item's folder is
// written by the one worker that holds the item's claim (and the Storage SCP routing into it).
// It is the Storage SCP's sink (pacs::ReceivedSink): the SCP stages and keeps copies apart
// where the Spool says.
class Spool : public pacs::ReceivedSink {
 public:
  explicit Spool(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  // <root>/<item id>: the study's files as <SOPInstanceUID>.dcm.
  std::string item_dir(std::int64_t item_id) const;
  // <root>/.quarantine/<item id>: what arrived for the item but is never pushed, with reasons.
  std::string quarantine_dir(std::int64_t item_id) const;
  // <root>/.incoming: where the Storage SCP stages what arrives before it knows the study.
  std::string staging_dir() const override;
  // The SCP's differing second copy of an instance of the folder `dest_dir` (an item's): into
  // that item's quarantine.
  std::string keep_apart(const std::string& file, const std::string& dest_dir,
                         const std::string& name, const std::string& reason) const override;
  // Creates the item's folder (before a retrieval writes into it).
  std::string make_item_dir(std::int64_t item_id) const;

  // Moves a file of the item's folder into its quarantine (never pushed), with `reason`.
  // Returns where it went. Throws std::runtime_error naming what failed.
  std::string quarantine(std::int64_t item_id, const std::string& file,
                         const std::string& reason) const;
  // "" or "; quarantined N instance(s) in DIR (...): reason; ..." for the item's quarantine.
  std::string quarantine_note(std::int64_t item_id) const;

  // The files validation accepted (validated.hpp); nullopt when none are recorded. Throws
  // std::runtime_error when the list exists but cannot be read.
  std::optional<std::vector<validate::ValidFile>> validated(std::int64_t item_id) const;
  void record_validated(std::int64_t item_id, const std::vector<validate::ValidFile>& files) const;
  void forget_validated(std::int64_t item_id) const noexcept;
  // Removes one file of the item's folder (a file changed since validation). Never throws.
  void remove_file(const std::string& path) const noexcept;

  // What the item's folder holds: .dcm files (non-empty) and bytes of every file.
  struct Held {
    std::int64_t files = 0, bytes = 0;
  };
  Held held(std::int64_t item_id) const;

  // Removes the item's folder with its quarantine. Throws std::runtime_error naming what could
  // not be removed.
  void remove(std::int64_t item_id) const;

  // "" when the spool has room for more retrievals under `limits` (spool_min_free_mb free on
  // its file system, below spool_max_mb in use), else why not, for the log and `status`.
  std::string lacks_room(const config::Limits& limits) const;

  // Start-up, before the Storage SCP and the workers run: prepare_spool() below.
  int prepare(const std::string& boot_id, store::Store& store) const;
  // At a clean stop: mark_spool_synced() below.
  void mark_synced(const std::string& boot_id) const;

  // Removes the folders of items `finished` says are done with (verified, cancelled, gone).
  // At start-up also what a killed run left: the SCP's staging files, unfinished files in the
  // items' folders (remove_crash_leftovers).
  void clean(bool at_start, const std::function<bool(std::int64_t item_id)>& finished) const;

 private:
  std::string root_;
};

// Start-up, before the Storage SCP and the workers run: if the spool did not survive, discards
// it and requeues the unfinished items (logged as a warning); then marks the spool in use by
// this boot. Returns the number of items requeued. Throws std::runtime_error on I/O errors.
int prepare_spool(const std::string& spool_dir, const std::string& boot_id, store::Store& store);

// The content of boot_id_file (e.g. /proc/sys/kernel/random/boot_id), trimmed.
// Throws std::runtime_error naming the file if it cannot be read or is empty.
std::string read_boot_id(const std::string& boot_id_file);

// True when the files in spool_dir can be trusted: a new or never-marked spool, a restart in
// the same boot, or a previous stop that synced the spool.
bool spool_survived(const std::string& spool_dir, const std::string& boot_id);

// At start-up, before any file is written: the spool is in use by this boot and not synced.
// Both marks are fsynced. Throws std::runtime_error naming the file on failure.
void mark_spool_in_use(const std::string& spool_dir, const std::string& boot_id);

// At a clean stop, after the last file was written: syncfs() of the spool, then the
// synced mark. Throws std::runtime_error on failure (the next start then distrusts the spool).
void mark_spool_synced(const std::string& spool_dir, const std::string& boot_id);

// Removes every item directory (numeric name) with its quarantine; keeps the marks.
// Returns how many item directories were removed.
int discard_spool(const std::string& spool_dir);

// At start-up: removes what a killed run left unfinished in an item's directory (the Storage
// SCP's and C-GET's hidden ".p2x-*.part" files, a validated list's ".tmp"). Returns how many
// files were removed. Never throws. (They are never pushed either way: see validated.hpp.)
int remove_crash_leftovers(const std::string& item_dir) noexcept;

// The spool directory of one item (<spool>/<item id>).
std::string item_spool_dir(const std::string& spool_dir, std::int64_t item_id);

// Removes an item's spool: its quarantine first, then its directory (so a quarantine never
// outlives its directory). Throws std::runtime_error naming what could not be removed.
void remove_item_spool(const std::string& spool_dir, std::int64_t item_id);

}  // namespace p2x::pipeline
