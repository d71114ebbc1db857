// pipeline/push_step: the push step (validated -> pushed). Uploads a validated study to XNAT
// through the archive seam — exactly the files validation accepted (validated.hpp), checked
// byte for byte as they are sent — unless XNAT already holds it (a push is never repeated
// blindly), after the job's project check (project_check.hpp), and maps XNAT's answers to
// outcomes. The job's destination, when this push decided it, travels in the outcome.
#pragma once

#include <string>
#include <vector>

#include "pipeline/claim.hpp"
#include "pipeline/outcome.hpp"
#include "validate/validate.hpp"

namespace p2x::xnat {
class IArchive;
struct StudyFileChanged;
}  // namespace p2x::xnat

namespace p2x::pipeline {

class ProjectCheck;
class Spool;

class PushStep {
 public:
  // `store` is only read (the item's series).
  PushStep(xnat::IArchive& archive, const Spool& spool, ProjectCheck& project,
           const store::Store& store);
  Outcome run(const Claim& claim);

 private:
  Outcome push(const Claim& claim, const std::vector<validate::ValidFile>& validated,
               domain::Destination destination);
  Outcome changed_since_validation(const store::Item& it, const xnat::StudyFileChanged& e);

  xnat::IArchive& archive_;
  const Spool& spool_;
  ProjectCheck& project_;
  const store::Store& store_;
};

}  // namespace p2x::pipeline
