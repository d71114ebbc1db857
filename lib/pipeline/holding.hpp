// pipeline/holding: what XNAT holds of a study, per series, against what the PACS reported.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/store.hpp"
#include "xnat/xnat.hpp"

namespace p2x::xnat {
class IArchive;
}

namespace p2x::pipeline {

struct Holding {
  bool complete = true;
  std::int64_t files = 0;            // files XNAT holds of the expected ones
  std::string missing;               // readable: which series lack how many files
  std::set<std::string> incomplete;  // SeriesInstanceUIDs of the series XNAT lacks files of
};

// Scans are matched by SeriesInstanceUID (XNAT numbers them its own way).
Holding compare(const xnat::SessionInfo& session, const std::vector<store::Series>& series);

// What XNAT holds under the item's session label, where the job sends its sessions (the
// archive, or the prearchive entry of the study).
std::optional<xnat::SessionInfo> holding_of(xnat::IArchive& archive, const store::Job& job,
                                            const store::Item& it, bool prearchive);

}  // namespace p2x::pipeline
