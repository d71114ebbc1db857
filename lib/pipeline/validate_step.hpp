// pipeline/validate_step: the validation step (retrieved -> validated). Parses every file of a
// retrieved study, compares per series with what C-FIND reported, drops unreadable files,
// quarantines foreign ones (another study, a series the PACS did not report: never pushed,
// reported in the item's events with the Storage SCP's own quarantine), records the files it
// accepts for the push, and either passes the study on or sends it back to retrieve what is
// missing. The received count per series travels in the outcome.
#pragma once

#include "pipeline/claim.hpp"
#include "pipeline/outcome.hpp"

namespace p2x::pipeline {

class Spool;

class ValidateStep {
 public:
  // `store` is only read (the series C-FIND reported).
  ValidateStep(const Spool& spool, const store::Store& store);
  Outcome run(const Claim& claim);

 private:
  const Spool& spool_;
  const store::Store& store_;
};

}  // namespace p2x::pipeline
