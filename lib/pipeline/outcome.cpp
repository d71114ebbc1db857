// pipeline/outcome: the outcome values and apply(), the one writer of retries and failures.
#include "pipeline/outcome.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "pipeline/claim.hpp"

namespace p2x::pipeline {

using store::ItemState;

Outcome Outcome::done(ItemState next, std::string detail, store::ItemPatch patch) {
  Outcome o;
  o.kind = Kind::Done;
  o.next = next;
  o.detail = std::move(detail);
  o.patch = std::move(patch);
  return o;
}

Outcome Outcome::retry(std::string reason, store::ItemPatch patch) {
  Outcome o;
  o.kind = Kind::Retry;
  o.detail = std::move(reason);
  o.patch = std::move(patch);
  return o;
}

Outcome Outcome::wait(std::string reason, store::ItemPatch patch) {
  Outcome o = retry(std::move(reason), std::move(patch));
  o.kind = Kind::Wait;
  o.counts_attempt = false;
  return o;
}

Outcome Outcome::failed(std::string reason, bool retryable, store::ItemPatch patch) {
  Outcome o;
  o.kind = Kind::Failed;
  o.detail = std::move(reason);
  o.patch = std::move(patch);
  o.retryable = retryable;
  return o;
}

Outcome Outcome::fail_job(std::string reason) {
  Outcome o = failed(std::move(reason), true);
  o.kind = Kind::FailJob;
  return o;
}

RetryPolicy RetryPolicy::from(const config::Limits& limits) {
  RetryPolicy p;
  p.max_attempts = std::max(1, limits.max_attempts);
  p.backoff_initial_s = limits.backoff_initial_s;
  p.backoff_max_s = limits.backoff_max_s;
  return p;
}

int backoff_seconds(int attempt, int initial_s, int max_s, unsigned random) {
  double b = initial_s;
  for (int i = 1; i < attempt && b < max_s; ++i) b *= 2;
  b = std::min<double>(b, max_s);
  double jitter = 0.8 + 0.4 * (random % 1000) / 1000.0;
  return std::max(1, static_cast<int>(b * jitter));
}

namespace {

bool record(store::Store& store, const Claim& claim, ItemState to, const std::string& detail,
            const store::ItemPatch& patch) {
  if (store.transition(claim.item().id, claim.state(), to, detail, patch)) return true;
  spdlog::warn("{}: item {} is no longer {} (cancelled or failed meanwhile); '{}' not recorded",
               claim.step().name, claim.item().id, store::to_string(claim.state()), detail);
  return false;
}

bool record_failure(store::Store& store, const Claim& claim, const std::string& reason,
                    bool retryable, store::ItemPatch patch) {
  patch.last_error = reason;
  patch.retryable = retryable;
  spdlog::error("{} failed: {}", claim.step().name, reason);
  return record(store, claim, ItemState::Failed, reason, patch);
}

// Retry and wait: back to the ready state after a delay; a retry may use up the last attempt.
bool record_retry(store::Store& store, const Claim& claim, const Outcome& o,
                  const RetryPolicy& policy, std::int64_t now, unsigned random) {
  store::ItemPatch p = o.patch;
  const bool counts = o.kind == Outcome::Kind::Retry && o.counts_attempt;
  const int attempts = claim.item().attempts + (counts ? 1 : 0);
  if (counts) {
    p.attempts = attempts;
    if (attempts >= policy.max_attempts) {
      return record_failure(store, claim,
                            o.detail + " (gave up after " + std::to_string(attempts) + " attempts)",
                            true, p);
    }
  }
  // A wait backs off on the attempts so far (capped), so a PACS that stays down is asked less
  // and less often without using the item up.
  const int step = counts ? attempts : std::min(claim.item().attempts + 1, 6);
  const int delay = o.delay_s >= 0 ? o.delay_s
                                   : backoff_seconds(step, policy.backoff_initial_s,
                                                     policy.backoff_max_s, random);
  p.next_attempt_at = now + delay;
  if (!p.last_error && counts) p.last_error = o.detail;
  if (!p.wait_reason) {
    p.wait_reason = (counts ? "retry in " : "waiting ") + std::to_string(delay) + " s: " + o.detail;
  }
  if (counts) {
    spdlog::warn("{} attempt {} of {} failed, retrying in {} s: {}", claim.step().name, attempts,
                 policy.max_attempts, delay, o.detail);
  } else {
    spdlog::info("{} waits {} s: {}", claim.step().name, delay, o.detail);
  }
  return record(store, claim, o.back_to.value_or(claim.step().ready), o.detail, p);
}

bool record_outcome(store::Store& store, const Claim& claim, const Outcome& o,
                    const RetryPolicy& policy, std::int64_t now, unsigned random) {
  switch (o.kind) {
    case Outcome::Kind::Done:
      return record(store, claim, o.next, o.detail, o.patch);
    case Outcome::Kind::Retry:
    case Outcome::Kind::Wait:
      return record_retry(store, claim, o, policy, now, random);
    case Outcome::Kind::Failed:
      return record_failure(store, claim, o.detail, o.retryable, o.patch);
    case Outcome::Kind::FailJob: {
      const bool mine = record_failure(store, claim, o.detail, true, o.patch);
      const std::int64_t others = store.fail_job(claim.item().job_id, o.detail);
      spdlog::error("job {} failed ({} more item(s)): {}", claim.item().job_id, others, o.detail);
      return mine;
    }
  }
  return false;
}

}  // namespace

bool apply(store::Store& store, Claim& claim, const Outcome& o, const RetryPolicy& policy,
           std::int64_t now, unsigned random) {
  const bool recorded = record_outcome(store, claim, o, policy, now, random);
  claim.settle();  // recorded, or the item is no longer ours: the lease ends either way
  return recorded;
}

}  // namespace p2x::pipeline
