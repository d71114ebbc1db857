// pipeline/claim: an item a worker holds in a step's in-flight state — a lease.
//
// The store moved the item into the step's in-flight state (store::Store::claim); the Claim
// carries it with its job and the job's parsed options (read once, by load(), for every step of
// this claim). It ends in one of two ways: apply() records the step's Outcome (outcome.hpp), or
// the Claim goes out of scope without one — an exception, an early return, a stop — and its
// destructor releases the item as a retry ("abandoned: <why>"), counting an attempt, back to the
// step's ready state after the backoff. So no item stays in flight until the next restart
// because a worker lost it. (A release the store refuses too is logged; recovery at start-up
// then returns the item, as after a crash.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "pipeline/live.hpp"
#include "pipeline/options.hpp"
#include "pipeline/outcome.hpp"
#include "store/store.hpp"

namespace p2x::pipeline {

class Claim {
 public:
  // `clock` and `policy` are what the release of an abandoned claim uses.
  Claim(store::Store& store, store::Item item, const Step& step, Clock clock,
        RetryPolicy policy) noexcept;
  ~Claim();
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;

  // Reads the item's job and parses its options. False when the job no longer exists. Bad
  // options do not throw here: options() does, for the steps that use them.
  bool load();

  const store::Item& item() const { return item_; }
  store::Item& item() { return item_; }
  const store::Job& job() const { return *job_; }  // after load() returned true
  // The job's options; throws PermanentError (steps.hpp) naming the bad option.
  const JobOptions& options() const;
  const Step& step() const { return step_; }
  store::ItemState state() const { return state_; }

  // Moves the item on without ending the step, writing `patch` with the transition; false if it
  // is no longer ours (cancelled).
  bool advance(store::ItemState to, const std::string& detail, const store::ItemPatch& patch = {});
  // Why the claim is being given up (recorded by the destructor if no outcome was applied).
  void abandon(std::string why) { why_ = std::move(why); }
  // The lease ended: an outcome was applied, or the item is no longer ours. (apply() calls it.)
  void settle() { settled_ = true; }
  bool settled() const { return settled_; }

 private:
  store::Store& store_;
  store::Item item_;
  Step step_;
  store::ItemState state_;
  Clock clock_;
  RetryPolicy policy_;
  std::optional<store::Job> job_;
  std::optional<JobOptions> options_;
  std::string options_error_;
  std::string why_ = "the worker ended without an outcome";
  bool settled_ = false;
};

}  // namespace p2x::pipeline
