// pipeline/claim: the lease of a claimed item (see claim.hpp).
#include "pipeline/claim.hpp"

#include <spdlog/spdlog.h>

#include "pipeline/steps.hpp"

namespace p2x::pipeline {

Claim::Claim(store::Store& store, store::Item item, const Step& step, Clock clock,
             RetryPolicy policy) noexcept
    : store_(store),
      item_(std::move(item)),
      step_(step),
      state_(step.in_flight),
      clock_(std::move(clock)),
      policy_(policy) {}

Claim::~Claim() {
  if (settled_) return;
  try {
    const std::int64_t now = clock_ ? clock_() : system_clock();
    const auto random = static_cast<unsigned>(now) * 2654435761u + static_cast<unsigned>(item_.id);
    apply(store_, *this, Outcome::retry("abandoned: " + why_), policy_, now, random);
  } catch (const std::exception& e) {
    spdlog::error(
        "{}: item {} abandoned ({}) and not released: {}; it returns to {} at the "
        "next start",
        step_.name, item_.id, why_, e.what(), store::to_string(step_.ready));
  } catch (...) {
    spdlog::error("{}: item {} abandoned ({}) and not released", step_.name, item_.id, why_);
  }
}

bool Claim::load() {
  job_ = store_.job(item_.job_id);
  if (!job_) return false;
  try {
    options_ = parse_job_options(job_->options_json);
  } catch (const std::exception& e) {
    options_error_ = e.what();
  }
  return true;
}

const JobOptions& Claim::options() const {
  if (!options_)
    throw PermanentError(options_error_.empty() ? "the job's options were not read"
                                                : options_error_);
  return *options_;
}

bool Claim::advance(store::ItemState to, const std::string& detail, const store::ItemPatch& patch) {
  if (!store_.transition(item_.id, state_, to, detail, patch)) {
    settled_ = true;  // no longer ours: nothing to release
    return false;
  }
  state_ = to;
  item_.state = to;
  return true;
}

}  // namespace p2x::pipeline
