// Internal: the identifiers a Selection is retrieved by, and one C-MOVE or C-GET exchange on an
// open association (request, pending responses with their counters, the C-STOREs of a C-GET,
// C-CANCEL on abort, the final status). Used by Client and Session (client_retrieve.cpp).
#pragma once

#include "pacs/association.hpp"

#include <dcmtk/dcmdata/dcdatset.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace p2x::pacs::detail {

struct RetrieveRequest {
  std::unique_ptr<DcmDataset> ids;
  std::string label;  // "study X", "series Y", "N instances" for messages
};

// The identifiers to send for a selection: one request for a study, one per series, or
// instance UID lists (IMAGE level, in chunks). Throws std::invalid_argument for an invalid
// study UID or instances without exactly one series.
std::vector<RetrieveRequest> build_requests(const Selection& what);

// Runs one C-MOVE or C-GET exchange: sends the request and handles responses (and, for C-GET,
// incoming C-STOREs through `on_store`) until the final response. Counts are added to `total`;
// throws PacsError (the association is closed then).
class RetrieveExchange {
 public:
  RetrieveExchange(Association& assoc, bool is_get, const ProgressFn& on_progress,
                   const AbortFn& should_abort, RetrieveResult& total)
      : assoc_(assoc),
        is_get_(is_get),
        on_progress_(on_progress),
        should_abort_(should_abort),
        total_(total) {}

  // C-GET: handles one incoming C-STORE (command received, data set pending); false ends
  // the exchange.
  std::function<bool(T_ASC_PresentationContextID, T_DIMSE_C_StoreRQ&)> on_store;

  void run(T_ASC_PresentationContextID pres, Uint16 message_id, const char* sop_class,
           DcmDataset& ids, const std::string& label);

 private:
  using Clock = std::chrono::steady_clock;
  // Per-request response counters (as the PACS reports them).
  struct Counters {
    int remaining = -1, completed = 0, failed = 0, warning = 0;
  };

  void send_request(T_ASC_PresentationContextID pres, Uint16 message_id, const char* sop_class,
                    DcmDataset& ids);
  // Status and counters of a C-MOVE/C-GET response (its data set, if any, read and dropped).
  Uint16 read_response(const T_DIMSE_Message& rsp, Counters& c);
  void report(const Counters& c) const;
  bool wants_abort(Clock::time_point last_activity, int idle_s) const;
  [[noreturn]] void fail_network(const OFCondition& cond);
  [[noreturn]] void abort_exchange(T_ASC_PresentationContextID pres, Uint16 message_id,
                                   const std::string& label);
  // Adds the final response's counts to the total; throws PacsError(Failed) for a failure
  // without sub-operations: transient unless the status names a cause retrying cannot cure.
  void finish(Uint16 status, const std::string& comment, const Counters& c,
              const std::string& label);
  static bool names_permanent_cause(Uint16 status);
  // What a failure without sub-operations means, for its message.
  std::string nothing_delivered(Uint16 status) const;

  Association& assoc_;
  bool is_get_;
  const ProgressFn& on_progress_;
  const AbortFn& should_abort_;
  RetrieveResult& total_;
};

}  // namespace p2x::pacs::detail
