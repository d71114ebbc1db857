// pipeline/validate_step: the validation step (see validate_step.hpp).
#include "pipeline/validate_step.hpp"

#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "pipeline/spool.hpp"
#include "validate/validate.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;

namespace {

// Moves the report's foreign files into the item's quarantine; a file that cannot be moved is
// deleted. Returns "" or why a foreign file is still in the item's folder (it must not be pushed).
std::string quarantine_foreign(const Spool& spool, std::int64_t item_id,
                               const validate::Report& r) {
  for (const auto& f : r.foreign) {
    const std::string name = fs::path(f.path).filename().string();
    try {
      const std::string kept = spool.quarantine(item_id, f.path, f.reason);
      spdlog::warn("validation: {}: {}; quarantined as {}", name, f.reason, kept);
    } catch (const std::exception& e) {
      std::error_code ec;
      fs::remove(f.path, ec);
      spdlog::error("validation: {} ({}) not quarantined ({}), deleted", f.path, f.reason,
                    e.what());
      if (ec) return "cannot quarantine or remove " + f.path + ": " + ec.message();
    }
  }
  return {};
}

}  // namespace

ValidateStep::ValidateStep(const Spool& spool, const store::Store& store)
    : spool_(spool), store_(store) {}

Outcome ValidateStep::run(const Claim& claim) {
  const store::Item& it = claim.item();
  const std::string dir = spool_.item_dir(it.id);
  std::vector<validate::ExpectedSeries> expected;
  for (const auto& s : store_.series(it.id))
    expected.push_back({s.series_uid, s.description, s.expected});
  // Throws when the spool cannot be read at all: the claim is released as a retry with backoff,
  // counting attempts, so such a study fails after limits.max_attempts.
  const validate::Report r = validate::check_study(dir, it.study_uid, expected);
  store::ItemPatch p;
  for (const auto& s : r.series) p.series_received.emplace_back(s.series_uid, s.received);
  for (const auto& bad : r.bad_files) spool_.remove_file(bad);
  const std::string stuck = quarantine_foreign(spool_, it.id, r);
  if (!stuck.empty()) return Outcome::retry(stuck, p);
  const std::string note = spool_.quarantine_note(it.id);
  p.received = r.files;
  p.bytes = r.bytes;
  if (r.complete) {
    // What the push sends, byte for byte (validated.hpp).
    try {
      spool_.record_validated(it.id, r.valid);
    } catch (const std::exception& e) {
      return Outcome::retry(std::string("cannot record the validated files: ") + e.what(), p);
    }
    p.wait_reason = std::string();
    return Outcome::done(store::ItemState::Validated, r.summary() + note, p);
  }
  spool_.forget_validated(it.id);
  return Outcome::retry("incomplete: " + r.summary() + note, p).to(store::ItemState::Queued);
}

}  // namespace p2x::pipeline
