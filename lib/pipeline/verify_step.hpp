// pipeline/verify_step: the verification step (pushed -> verified). Asks XNAT what it holds of
// a pushed study (in the archive, or in the prearchive for a job whose sessions go there); when
// every series is complete it removes the spool copy and the item is verified; otherwise it
// waits for XNAT to show the upload, after enough checks pushes again once (counting an
// attempt), and when that did not help either fails the item naming the series and the likely
// cause (a series import filter). Its counters — checks that found XNAT incomplete, pushes
// again — are item columns (store::Item::verify_checks, repushes) written by its outcomes.
#pragma once

#include <optional>

#include "pipeline/claim.hpp"
#include "pipeline/outcome.hpp"

namespace p2x::xnat {
class IArchive;
}

namespace p2x::pipeline {

class Spool;
struct Holding;

class VerifyStep {
 public:
  // `store` is only read (the item's series). `prearchive_setting`: where jobs pushed by a
  // daemon older than the job's destination column went (xnat.prearchive).
  VerifyStep(xnat::IArchive& archive, const Spool& spool, const store::Store& store,
             std::optional<bool> prearchive_setting);
  Outcome run(const Claim& claim);

 private:
  Outcome not_yet_verified(const store::Item& it, const Holding& h, store::ItemPatch p,
                           const std::string& project);
  std::optional<Outcome> split_study(const store::Job& job, const store::Item& it, const Holding& h,
                                     const store::ItemPatch& p);

  xnat::IArchive& archive_;
  const Spool& spool_;
  const store::Store& store_;
  std::optional<bool> prearchive_setting_;
};

}  // namespace p2x::pipeline
