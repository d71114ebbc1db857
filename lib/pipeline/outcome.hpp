// pipeline/outcome: how a step reports what it did to its item, and the one place where that
// report is written to the store.
//
// A step claims its item (Claim, claim.hpp: the item moved into the step's in-flight state, a
// lease), works, and returns one Outcome:
//   done      the item reached `next` (detail and fields recorded with the transition);
//   retry     try again later: back to the step's ready state (or `back_to`), counting an
//             attempt unless told not to, after the backoff (exponential, with jitter); the
//             attempt that reaches limits.max_attempts fails the item instead;
//   wait      not now, through no fault of the item (breaker open, window closed, job paused,
//             XNAT still building the session): back, no attempt used, after `delay_s`;
//   failed    a reason a person can act on; `retryable` says whether `pacs2xnat retry` helps;
//   fail_job  the reason affects every item of the job (credentials, project): all fail once.
// apply() records it: attempts, backoff, next_attempt_at, wait reason, event, job state, and
// what the step learned (the patch). No step writes its own retry logic or to the store. A
// transition that finds the item no longer in the claimed state (cancelled meanwhile) changes
// nothing and says so in the log: never a success.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "store/store.hpp"

namespace p2x::pipeline {

// A stage as the store sees it: where its items wait and the in-flight state it claims them into.
struct Step {
  const char* name;
  store::ItemState ready, in_flight;
};
inline constexpr Step kRetrieveStep{"retrieval", store::ItemState::Queued,
                                    store::ItemState::Querying};
inline constexpr Step kValidateStep{"validation", store::ItemState::Retrieved,
                                    store::ItemState::Validating};
inline constexpr Step kPushStep{"push", store::ItemState::Validated, store::ItemState::Pushing};
inline constexpr Step kVerifyStep{"verification", store::ItemState::Pushed,
                                  store::ItemState::Verifying};

struct Outcome {
  enum class Kind { Done, Retry, Wait, Failed, FailJob };
  Kind kind = Kind::Done;
  store::ItemState next = store::ItemState::Queued;  // done: the state reached
  std::optional<store::ItemState> back_to;           // retry/wait: instead of the ready state
  std::string detail;                                // the event's text, the reason
  store::ItemPatch patch;                            // fields recorded with the transition
  bool counts_attempt = true;                        // retry
  int delay_s = -1;                                  // retry/wait: fixed delay (-1: backoff)
  bool retryable = true;                             // failed

  static Outcome done(store::ItemState next, std::string detail, store::ItemPatch patch = {});
  static Outcome retry(std::string reason, store::ItemPatch patch = {});
  static Outcome wait(std::string reason, store::ItemPatch patch = {});
  static Outcome failed(std::string reason, bool retryable, store::ItemPatch patch = {});
  static Outcome fail_job(std::string reason);

  Outcome& to(store::ItemState state) {
    back_to = state;
    return *this;
  }
  Outcome& after(int seconds) {
    delay_s = seconds;
    return *this;
  }
  Outcome& without_attempt() {
    counts_attempt = false;
    return *this;
  }
};

// What apply() needs to know of the configuration (a snapshot: see Pipeline::limits()).
struct RetryPolicy {
  int max_attempts = 5, backoff_initial_s = 10, backoff_max_s = 900;
  static RetryPolicy from(const config::Limits& limits);
};

// Exponential backoff with jitter: initial * 2^(attempt-1), capped, +-20 %.
int backoff_seconds(int attempt, int initial_s, int max_s, unsigned random);

class Claim;  // claim.hpp: the item a step works on, held as a lease

// Records `outcome` for the claimed item — the state change with everything the step learned
// (the outcome's patch: labels, series, counters, the job's destination) in one transaction —
// and ends the claim's lease. `now` and `random` are given so tests can pin them. Returns false
// when the item was no longer in the claimed state (nothing recorded).
bool apply(store::Store& store, Claim& claim, const Outcome& outcome, const RetryPolicy& policy,
           std::int64_t now, unsigned random);

}  // namespace p2x::pipeline
