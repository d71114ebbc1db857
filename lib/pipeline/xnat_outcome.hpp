// pipeline/xnat_outcome: XNAT's answers as outcomes, one rule for the push, the verification and
// the project check.
#pragma once

#include <string>

#include "pipeline/outcome.hpp"
#include "xnat/xnat.hpp"

namespace p2x::xnat {
class IArchive;
}

namespace p2x::pipeline {

// What affects every item of the job (credentials, TLS, rights, a missing project: asked of
// `archive` on a 404) fails the job once; transient trouble (5xx, timeouts, 400 "Concurrent
// file sends of the same data is not supported.") is retried; an answer that cannot be read
// waits; the rest fails the item with XNAT's text, once: a label conflict that DICOM-zip wraps
// in a 400 ("Failed to archive N of M session(s)") is as permanent as a 409.
Outcome outcome_of(const xnat::XnatError& e, xnat::IArchive& archive, const std::string& project);

}  // namespace p2x::pipeline
