// metrics/recorder: the seam through which the import's modules report facts for /metrics.
//
// pacs2xnat's pipeline and XNAT client call a Recorder at the point where a fact happens (a
// study retrieved, a request answered, a study verified); the daemon injects the Prometheus
// implementation (metrics/metrics.hpp). Header-only and free of Prometheus types, so a module
// that reports needs no link dependency; a null Recorder* means "not measured".
#pragma once

#include <cstdint>
#include <string>

namespace p2x::metrics {

class Recorder {
 public:
  virtual ~Recorder() = default;
  // Instances (and their bytes) that arrived in the spool from `pacs` for one retrieval.
  virtual void retrieved(const std::string& pacs, std::int64_t instances, std::int64_t bytes) = 0;
  // C-MOVE/C-GET sub-operations the PACS reported as failed.
  virtual void suboperations_failed(const std::string& pacs, std::int64_t count) = 0;
  // One XNAT request of `kind` ("login", "import", ...) that took `seconds`; `status` is the
  // HTTP status, 0 when no answer came.
  virtual void xnat_request(const std::string& kind, double seconds, int status) = 0;
  // Request body bytes XNAT accepted (study uploads).
  virtual void uploaded(std::int64_t bytes) = 0;
  // A study reached a final state: verified, or failed.
  virtual void study_finished(bool verified) = 0;
};

}  // namespace p2x::metrics
