// pacs/retrieval: DimsePacs, the DIMSE implementation of the pipeline's PACS seam.
#include "pacs/retrieval.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace p2x::pacs {

namespace {

using Clock = std::chrono::steady_clock;

// One study's C-FINDs and its C-MOVEs or C-GETs on one association (Session).
class DimseRetrieval : public IRetrieval {
 public:
  DimseRetrieval(const Peer& peer, RetrieveMethod method, StorageScp* scp)
      : client_(peer),
        method_(method),
        scp_(scp),
        session_(client_, method == RetrieveMethod::Get) {}

  std::vector<StudyMatch> find_studies(const Query& query) override {
    return session_.find_studies(query);
  }
  std::vector<SeriesInfo> find_series(const std::string& study_uid) override {
    return session_.find_series(study_uid);
  }
  std::vector<InstanceInfo> find_instances(const std::string& study_uid,
                                           const std::string& series_uid) override {
    return session_.find_instances(study_uid, series_uid);
  }

  RetrieveResult fetch(const std::vector<Selection>& selections, const std::string& dest_dir,
                       const AbortFn& should_abort) override {
    RetrieveResult total;
    if (selections.empty()) return total;
    // C-MOVE: instances arrive at the Storage SCP, routed to dest_dir while the route lives,
    // from the PACS being retrieved from only (the AE titles it stores from).
    std::unique_ptr<StorageScp::Route> route;
    if (method_ == RetrieveMethod::Move) {
      if (!scp_) throw std::logic_error("C-MOVE without a Storage SCP to receive it");
      const Peer& peer = client_.peer();
      route = scp_->expect(
          selections.front().study_uid, dest_dir,
          peer.storing_aes.empty() ? std::vector<std::string>{peer.ae_title} : peer.storing_aes);
    }
    const auto sels = method_ == RetrieveMethod::Get ? share_associations(selections) : selections;
    for (const auto& sel : sels) add(total, fetch_one(sel, dest_dir, route.get(), should_abort));
    if (route) total.received = route->received();
    return total;
  }

  void close() override { session_.close(); }

 private:
  // C-GET: consecutive selections whose SOP classes fit in one association together are each
  // given the union of those classes, so they share one association (Session::get opens a new
  // one only for classes it was not negotiated for). A selection of unknown classes (none
  // listed) keeps none: the built-in list.
  static std::vector<Selection> share_associations(std::vector<Selection> sels) {
    std::size_t start = 0;
    std::vector<std::string> group;
    const auto close_group = [&](std::size_t end) {
      for (std::size_t i = start; i < end; ++i)
        if (!sels[i].sop_classes.empty()) sels[i].sop_classes = group;
      start = end;
      group.clear();
    };
    for (std::size_t i = 0; i < sels.size(); ++i) {
      std::vector<std::string> merged = group;
      for (const auto& c : sels[i].sop_classes)
        if (std::find(merged.begin(), merged.end(), c) == merged.end()) merged.push_back(c);
      const bool unknown = sels[i].sop_classes.empty();
      if (i > start && (unknown || merged.size() > kMaxGetSopClasses)) {
        close_group(i);
        merged = sels[i].sop_classes;
      }
      group = merged;
      if (unknown) close_group(i + 1);
    }
    close_group(sels.size());
    return sels;
  }

  static void add(RetrieveResult& total, const RetrieveResult& r) {
    total.completed += r.completed;
    total.failed += r.failed;
    total.warning += r.warning;
    total.received += r.received;
    total.bytes += r.bytes;
    total.receiver_busy += r.receiver_busy;
    total.status = r.status;
    if (!r.status_text.empty()) total.status_text = r.status_text;
  }

  // One C-MOVE or C-GET; aborted when the caller says so or when neither a response nor a
  // file has come for idle_s. A C-MOVE during which our Storage SCP turned the PACS away for
  // lack of a free slot says so: a failure then is ReceiverBusy, failed sub-operations are
  // counted in receiver_busy.
  RetrieveResult fetch_one(const Selection& sel, const std::string& dest_dir,
                           const StorageScp::Route* route, const AbortFn& should_abort) {
    const int busy_before = route ? route->busy_refused() : 0;
    const auto busy_since = [&] { return route ? route->busy_refused() - busy_before : 0; };
    try {
      RetrieveResult r = fetch_watched(sel, dest_dir, route, should_abort);
      r.receiver_busy = busy_since();
      return r;
    } catch (const PacsError& e) {
      if (e.kind() != ErrorKind::Failed || busy_since() == 0) throw;
      throw PacsError(ErrorKind::ReceiverBusy,
                      std::string(e.what()) +
                          "; our Storage SCP had no free association "
                          "for the PACS (" +
                          std::to_string(busy_since()) + " turned away)",
                      true);
    }
  }

  RetrieveResult fetch_watched(const Selection& sel, const std::string& dest_dir,
                               const StorageScp::Route* route, const AbortFn& should_abort) {
    const auto idle = std::chrono::seconds(std::max(1, client_.peer().timeouts.idle_s));
    Clock::time_point last_progress = Clock::now();
    bool idle_expired = false;
    auto on_progress = [&](const Progress&) { last_progress = Clock::now(); };
    auto abort = [&]() {
      Clock::time_point last = last_progress;
      if (route && route->last_activity() > last) last = route->last_activity();
      if (Clock::now() - last > idle) {
        idle_expired = true;
        return true;
      }
      return should_abort && should_abort();
    };
    try {
      return method_ == RetrieveMethod::Move ? session_.move(sel, on_progress, abort)
                                             : session_.get(sel, dest_dir, on_progress, abort);
    } catch (const PacsError& e) {
      if (e.kind() != ErrorKind::Aborted || !idle_expired) throw;
      throw PacsError(ErrorKind::Timeout,
                      "retrieval made no progress for " +
                          std::to_string(client_.peer().timeouts.idle_s) + " s; aborted",
                      true);
    }
  }

  Client client_;
  RetrieveMethod method_;
  StorageScp* scp_;
  Session session_;
};

}  // namespace

std::unique_ptr<IRetrieval> DimsePacs::open(const Peer& peer, RetrieveMethod method) {
  return std::make_unique<DimseRetrieval>(peer, method, scp_);
}

void DimsePacs::echo(const Peer& peer) {
  Client(peer).echo();
}

}  // namespace p2x::pacs
