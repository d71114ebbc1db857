// pipeline/steps: helpers shared by the step classes (find.cpp, retrieve_step.cpp,
// parallel_fetch.cpp): how an item is named in logs and messages, the PACS peer of a node, the
// study a row means (find_study), the per-PACS association slot.
#pragma once

#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "log/log.hpp"
#include "pacs/pacs.hpp"
#include "store/store.hpp"

namespace p2x::pacs {
class IRetrieval;
}

namespace p2x::jobopts {
struct JobOptions;
}

namespace p2x::pipeline {

// A failure no retry can fix (no match, ambiguous match, label conflict): the item fails.
struct PermanentError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

log::Fields fields_of(const store::Item& it, const std::string& pacs = {},
                      const std::string& project = {});

pacs::Peer peer_for(const config::PacsNode& node, const std::string& our_ae);

// How an item is named in messages: "accession ACC1", "patient P1 on 20240315", "study 1.2.3".
std::string describe_row(const store::Item& it);

using JobOptions = jobopts::JobOptions;  // jobopts/jobopts.hpp

// What C-FIND found for one row: the study, its series after the job's filters, the total.
struct Found {
  pacs::StudyMatch study;
  std::vector<store::Series> series;
  std::int64_t expected = 0;
  int skipped_series = 0;
  int skipped_objects = 0;  // instances of SOP classes the PACS node skips
  // Series of which only some instances are wanted (the others are of a skipped SOP class).
  std::map<std::string, std::vector<std::string>> only_sops;
  // The storage SOP classes of the wanted instances (what a C-GET must negotiate), when asked
  // for: from the study's SOP Classes in Study, else from the IMAGE-level C-FIND of each wanted
  // series (then also per series, in series_sop_classes). Empty: the PACS reports neither.
  std::vector<std::string> sop_classes;
  std::map<std::string, std::vector<std::string>> series_sop_classes;
};

// What the retrieval made of instances beyond C-FIND's counts (retrieve.cpp, reconcile).
struct Reconciled {
  Found found;       // with the expectations raised where the PACS holds more
  std::string note;  // for the item's event; "" when the spool held nothing beyond the counts
  int raised = 0;    // series whose expectation was raised
};

// C-FIND the row's study and its series. A PACS that ignores a matching key (ModalitiesInStudy,
// as dcmqrscp does) is filtered here: between several studies of the row's patient and day the
// row's modality chooses by the returned ModalitiesInStudy, else by a SERIES-level C-FIND of each
// candidate. With learn_sop_classes (a C-GET follows) Found::sop_classes is filled. Throws
// PermanentError for no match or a real tie (naming each candidate with its modalities), or when
// the job's series-description filter cannot be applied (the PACS returns no descriptions),
// pacs::PacsError for network trouble.
Found find_study(pacs::IRetrieval& pacs, const store::Item& it, const JobOptions& opt,
                 const std::string& pacs_name,
                 const std::vector<std::string>& skip_sop_classes = {},
                 bool learn_sop_classes = false);

// RAII association slot on one PACS.
class SlotLease {
 public:
  SlotLease(class Gate& gate, std::string pacs) : gate_(gate), pacs_(std::move(pacs)) {}
  ~SlotLease();
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;
  void release();  // early, when the association is closed but the thread has work left

 private:
  class Gate& gate_;
  std::string pacs_;
  bool held_ = true;
};

}  // namespace p2x::pipeline
