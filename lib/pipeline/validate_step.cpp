// The validation step: parse every file of a retrieved study, compare per series with what
// C-FIND reported, drop unreadable files, quarantine foreign ones (another study, a series the
// PACS did not report: never pushed, reported in the item's events with the Storage SCP's own
// quarantine), and either pass the study on or send it back to retrieve what is missing.
#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "pacs/pacs.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/validated.hpp"
#include "validate/validate.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kReasonsShown = 5;

// Moves the report's foreign files into the quarantine beside `dir`; a file that cannot be
// moved is deleted. Returns "" or why a foreign file is still in `dir` (it must not be pushed).
std::string quarantine_foreign(const validate::Report& r, const std::string& dir) {
  for (const auto& f : r.foreign) {
    const std::string name = fs::path(f.path).filename().string();
    try {
      const std::string kept = pacs::quarantine_file(f.path, dir, name, f.reason);
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

// "" or "; quarantined N instance(s) in DIR (...): reason; reason (k instances); ..." for what
// the quarantine of `dir` holds, grouped by reason in the order they came.
std::string quarantine_note(const std::string& dir) {
  const auto files = pacs::quarantined_files(dir);
  if (files.empty()) return {};
  std::vector<std::pair<std::string, int>> reasons;
  for (const auto& f : files) {
    auto it = std::find_if(reasons.begin(), reasons.end(),
                           [&](const auto& r) { return r.first == f.reason; });
    if (it == reasons.end()) {
      reasons.emplace_back(f.reason, 1);
    } else {
      ++it->second;
    }
  }
  std::string note = "; quarantined " + std::to_string(files.size()) + " instance(s) in " +
                     pacs::quarantine_dir_for(dir) +
                     " (never pushed; removed with the study's spool): ";
  for (std::size_t i = 0; i < reasons.size() && i < kReasonsShown; ++i) {
    note += (i == 0 ? "" : "; ") + reasons[i].first;
    if (reasons[i].second > 1) note += " (" + std::to_string(reasons[i].second) + " instances)";
  }
  if (reasons.size() > kReasonsShown)
    note += "; and " + std::to_string(reasons.size() - kReasonsShown) + " other reason(s)";
  return note;
}

}  // namespace

Outcome Pipeline::validate(Claim& claim) {
  const store::Item& it = claim.item();
  const std::string dir = spool_dir(it.id);
  std::vector<validate::ExpectedSeries> expected;
  for (const auto& s : store_.series(it.id)) expected.push_back({s.series_uid, s.description, s.expected});
  // Throws when the spool cannot be read at all: run_step retries that with backoff, counting
  // attempts, so such a study fails after limits.max_attempts.
  const validate::Report r = validate::check_study(dir, it.study_uid, expected);
  for (const auto& s : r.series) store_.set_series_received(it.id, s.series_uid, s.received);
  std::error_code ec;
  for (const auto& bad : r.bad_files) fs::remove(bad, ec);
  const std::string stuck = quarantine_foreign(r, dir);
  if (!stuck.empty()) return Outcome::retry(stuck);
  const std::string note = quarantine_note(dir);
  store::ItemPatch p;
  p.received = r.files;
  p.bytes = r.bytes;
  if (r.complete) {
    // What the push sends, byte for byte (validated.hpp).
    try {
      write_validated(dir, r.valid);
    } catch (const std::exception& e) {
      return Outcome::retry(std::string("cannot record the validated files: ") + e.what(), p);
    }
    p.wait_reason = std::string();
    return Outcome::done(store::ItemState::Validated, r.summary() + note, p);
  }
  forget_validated(dir);
  return Outcome::retry("incomplete: " + r.summary() + note, p).to(store::ItemState::Queued);
}

}  // namespace p2x::pipeline
