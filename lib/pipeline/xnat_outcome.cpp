// pipeline/xnat_outcome: XNAT's answers as outcomes (see xnat_outcome.hpp).
#include "pipeline/xnat_outcome.hpp"

#include "xnat/archive.hpp"

namespace p2x::pipeline {

Outcome outcome_of(const xnat::XnatError& e, xnat::IArchive& archive, const std::string& project) {
  using K = xnat::ErrorKind;
  const std::string reason = std::string("XNAT: ") + e.what();
  bool whole_job = e.kind == K::Auth || e.kind == K::Tls || e.kind == K::Forbidden;
  if (e.kind == K::NotFound) {
    try {
      whole_job = !archive.project_exists(project);
    } catch (const std::exception&) {
      // unknown: do not fail the whole job on a guess
    }
  }
  if (whole_job) return Outcome::fail_job(reason);
  store::ItemPatch p;
  p.last_error = reason;
  // An answer that cannot be read says nothing about the study: wait for XNAT to answer
  // properly, without using attempts (the next push first asks what XNAT holds).
  if (e.kind == K::Unreadable) {
    p.wait_reason = reason;
    return Outcome::wait(reason, p);
  }
  if (e.transient()) return Outcome::retry(reason, p);
  return Outcome::failed(reason, false, p);
}

}  // namespace p2x::pipeline
