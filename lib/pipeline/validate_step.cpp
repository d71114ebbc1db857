// The validation step: parse every file of a retrieved study, compare per series with what
// C-FIND reported, drop unreadable or foreign files, and either pass the study on or send it
// back to retrieve what is missing.
#include <filesystem>

#include "pipeline/pipeline.hpp"
#include "validate/validate.hpp"

namespace p2x::pipeline {

Outcome Pipeline::validate(Claim& claim) {
  const store::Item& it = claim.item();
  std::vector<validate::ExpectedSeries> expected;
  for (const auto& s : store_.series(it.id)) expected.push_back({s.series_uid, s.description, s.expected});
  // Throws when the spool cannot be read at all: run_step retries that with backoff, counting
  // attempts, so such a study fails after limits.max_attempts.
  const validate::Report r = validate::check_study(spool_dir(it.id), it.study_uid, expected);
  for (const auto& s : r.series) store_.set_series_received(it.id, s.series_uid, s.received);
  std::error_code ec;
  for (const auto& bad : r.bad_files) std::filesystem::remove(bad, ec);
  store::ItemPatch p;
  p.received = r.files;
  p.bytes = r.bytes;
  if (r.complete) {
    p.wait_reason = std::string();
    return Outcome::done(store::ItemState::Validated, r.summary(), p);
  }
  return Outcome::retry("incomplete: " + r.summary(), p).to(store::ItemState::Queued);
}

}  // namespace p2x::pipeline
