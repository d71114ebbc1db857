// Independent DICOM checks for tests (DCMTK DcmSCU, study root C-FIND walked level by level):
// what a PACS holds, without going through lib/pacs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace p2x::test {

struct ProbeSeries {
  std::string uid, modality, description;
  int number = 0;
  int instances = 0;
};

struct ProbeStudy {
  std::string study_uid, accession, patient_id, study_date;
  std::vector<ProbeSeries> series;
  int instance_count() const;
};

// C-FIND STUDY -> SERIES -> IMAGE from 127.0.0.1:port, calling AE `calling_ae` (must be known
// to the PACS for Orthanc FIND unless it allows all). Filters are optional (empty = any).
// Throws std::runtime_error on a network or status failure.
std::vector<ProbeStudy> probe_studies(std::uint16_t port, const std::string& called_ae,
                                      const std::string& calling_ae,
                                      const std::string& accession = "",
                                      const std::string& patient_id = "",
                                      const std::string& study_date = "");

// Total instances over all studies (sum of probe_studies()).
int probe_instance_count(std::uint16_t port, const std::string& called_ae,
                         const std::string& calling_ae);

}  // namespace p2x::test
