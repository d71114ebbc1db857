// pacs/retrieval: the seam between the pipeline and the DICOM network — what the pipeline needs
// of a PACS, as two small interfaces, and their DIMSE implementation.
//
// IRetrieval is one retrieval of one study: one conversation (one association) that finds the
// study, its series and instances, and fetches selections of it into a directory. IPacs opens
// retrievals and answers C-ECHO probes. The pipeline only sees these; tests of its state logic
// substitute fakes (a PACS that drops the association, delivers fewer instances than it
// reported, is down for N calls). DimsePacs is the real thing: C-FIND + C-MOVE into our
// StorageScp, or C-FIND + C-GET.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pacs/pacs.hpp"

namespace p2x::pacs {

enum class RetrieveMethod { Move, Get };

class IRetrieval {
 public:
  virtual ~IRetrieval() = default;
  virtual std::vector<StudyMatch> find_studies(const Query& query) = 0;
  virtual std::vector<SeriesInfo> find_series(const std::string& study_uid) = 0;
  virtual std::vector<InstanceInfo> find_instances(const std::string& study_uid,
                                                   const std::string& series_uid) = 0;
  // Fetches every selection (all of one study) into dest_dir. RetrieveResult::received counts
  // the files that arrived. should_abort is polled about once a second: when it says true
  // the transfer is cancelled and PacsError(Aborted) thrown. A transfer without any progress
  // (no response, no file) for the peer's idle_s throws PacsError(Timeout, transient).
  virtual RetrieveResult fetch(const std::vector<Selection>& selections,
                               const std::string& dest_dir, const AbortFn& should_abort) = 0;
  // Releases the association (the PACS's slot is free from here on).
  virtual void close() = 0;
};

class IPacs {
 public:
  virtual ~IPacs() = default;
  virtual std::unique_ptr<IRetrieval> open(const Peer& peer, RetrieveMethod method) = 0;
  virtual void echo(const Peer& peer) = 0;  // throws PacsError when the PACS does not answer
};

class StorageScp;

// C-FIND and C-MOVE (into `scp`, routed by StudyInstanceUID) or C-GET, on one association per
// retrieval (pacs::Session). Without a Storage SCP (nullptr: C-FIND only, e.g. a dry run) a
// C-MOVE fetch throws std::logic_error.
class DimsePacs : public IPacs {
 public:
  explicit DimsePacs(StorageScp* scp) : scp_(scp) {}
  std::unique_ptr<IRetrieval> open(const Peer& peer, RetrieveMethod method) override;
  void echo(const Peer& peer) override;

 private:
  StorageScp* scp_;
};

}  // namespace p2x::pacs
