// Client: C-MOVE (to our AE) and C-GET (stored by this SCU) of a selection, one exchange per
// request (retrieve_exchange.hpp) on one association; the C-GET's storage contexts and files.
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"
#include "pacs/retrieve_exchange.hpp"

#include <dcmtk/dcmdata/dcuid.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

namespace p2x::pacs {

namespace {

using detail::Association;
using detail::ContextRequest;
using detail::RetrieveExchange;

// Keeps the Move Originator registration for the length of one C-MOVE.
class MoveRegistration {
 public:
  MoveRegistration(std::string ae, Uint16 id, const std::string& study)
      : ae_(std::move(ae)), id_(id) {
    detail::register_move(ae_, id_, study);
  }
  ~MoveRegistration() { detail::unregister_move(ae_, id_); }
  MoveRegistration(const MoveRegistration&) = delete;
  MoveRegistration& operator=(const MoveRegistration&) = delete;

 private:
  std::string ae_;
  Uint16 id_;
};

}  // namespace

RetrieveResult detail::move_on(Association& assoc, const Selection& what,
                               const ProgressFn& on_progress, const AbortFn& should_abort) {
  auto requests = detail::build_requests(what);
  const char* model = UID_MOVEStudyRootQueryRetrieveInformationModel;
  const auto pres = assoc.require_context(model);
  RetrieveResult total;
  total.status_text = "0x0000 Success";
  for (auto& req : requests) {
    const Uint16 id = detail::next_message_id();
    MoveRegistration reg(assoc.peer().our_ae, id, what.study_uid);
    RetrieveExchange ex(assoc, false, on_progress, should_abort, total);
    ex.run(pres, id, model, *req.ids, req.label);
  }
  return total;
}

RetrieveResult Client::move(const Selection& what, const ProgressFn& on_progress,
                            const AbortFn& should_abort) {
  Association assoc(peer_,
                    {{UID_MOVEStudyRootQueryRetrieveInformationModel,
                      detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}},
                    "C-MOVE");
  RetrieveResult total = detail::move_on(assoc, what, on_progress, should_abort);
  assoc.release();
  return total;
}

detail::GetProposal detail::get_contexts(const std::vector<std::string>& sop_classes,
                                         std::size_t reserved) {
  // The GET model; then an uncompressed context per storage class (us as SCP), so every class
  // can come as long as room lasts; then class by class (first given first) the compressed
  // groups of those that may be held compressed: what the PACS stores need not be transcoded.
  GetProposal out;
  std::set<std::string> seen;
  const auto& wanted = sop_classes.empty() ? detail::default_get_sop_classes() : sop_classes;
  out.contexts = {{UID_GETStudyRootQueryRetrieveInformationModel, detail::uncompressed_syntaxes(),
                   ASC_SC_ROLE_DEFAULT}};
  const auto room = [&] { return out.contexts.size() + reserved < detail::kMaxContexts; };
  const auto& groups = detail::get_syntax_groups();
  for (const auto& c : wanted) {
    if (c.empty() || !seen.insert(c).second) continue;
    if (!room()) {
      out.left_out.push_back(c);
      continue;
    }
    out.classes.push_back(c);
    out.contexts.push_back({c, groups.front(), ASC_SC_ROLE_SCP});
  }
  for (const auto& c : out.classes) {
    if (!detail::may_be_compressed(c)) continue;
    for (std::size_t g = 1; g < groups.size() && room(); ++g)
      out.contexts.push_back({c, groups[g], ASC_SC_ROLE_SCP});
  }
  return out;
}

std::vector<std::string> detail::unaccepted_classes(const Association& assoc,
                                                    const std::vector<std::string>& wanted) {
  std::set<std::string> accepted;
  for (const auto& ctx : assoc.accepted_contexts()) accepted.insert(ctx.abstract_syntax);
  std::vector<std::string> out;
  for (const auto& c : wanted)
    if (!accepted.count(c) && std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  return out;
}

std::string detail::too_many_classes(const GetProposal& proposal) {
  return "the selection holds " +
         std::to_string(proposal.classes.size() + proposal.left_out.size()) +
         " storage SOP classes, more than one association's " +
         std::to_string(detail::kMaxContexts) + " presentation contexts can carry (" +
         std::to_string(proposal.classes.size()) + " fitted)";
}

void detail::require_classes(const Association& assoc, const std::vector<std::string>& classes) {
  // The classes the study holds must each have a context (the built-in list need not).
  const auto refused = detail::unaccepted_classes(assoc, classes);
  if (!refused.empty())
    throw detail::not_negotiated(assoc.where(), refused,
                                 "the PACS accepted none of the storage contexts proposed "
                                 "for them, so it cannot send them to us on a C-GET "
                                 "association (retrieve from this PACS by C-MOVE, or have "
                                 "it accept these classes)");
}

PacsError detail::not_negotiated(const std::string& where, const std::vector<std::string>& classes,
                                 const std::string& why) {
  return PacsError(ErrorKind::Rejected,
                   where + ": cannot retrieve by C-GET the SOP class(es) " +
                       detail::sop_class_names(classes) + ": " + why,
                   false);
}

RetrieveResult Client::get(const Selection& what, const std::string& dest_dir,
                           const std::vector<std::string>& sop_classes,
                           const ProgressFn& on_progress, const AbortFn& should_abort) {
  const auto& classes = sop_classes.empty() ? what.sop_classes : sop_classes;
  const detail::GetProposal proposal = detail::get_contexts(classes, 0);
  if (!proposal.left_out.empty())
    throw detail::not_negotiated(detail::where_of(peer_, "C-GET"), proposal.left_out,
                                 detail::too_many_classes(proposal));
  Association assoc(peer_, proposal.contexts, "C-GET");
  detail::require_classes(assoc, classes);
  RetrieveResult total = detail::get_on(assoc, what, dest_dir, on_progress, should_abort);
  assoc.release();
  return total;
}

RetrieveResult detail::get_on(Association& assoc, const Selection& what,
                              const std::string& dest_dir, const ProgressFn& on_progress,
                              const AbortFn& should_abort) {
  auto requests = detail::build_requests(what);
  std::filesystem::create_directories(dest_dir);
  const char* model = UID_GETStudyRootQueryRetrieveInformationModel;
  const Peer& peer = assoc.peer();
  const auto pres = assoc.require_context(model);
  RetrieveResult total;
  total.status_text = "0x0000 Success";
  std::set<std::string> stored;
  std::mutex mutex;
  // On our own association: the sender is the PACS asked; only the study is checked.
  const detail::StoreResolver resolve = [&](const std::string& study, const detail::StoreCaller&) {
    if (study != what.study_uid) {
      spdlog::warn("pacs: C-GET from {} sent an instance of study {} (asked for {}): refused",
                   peer.ae_title, study, what.study_uid);
      return detail::StoreTarget::refuse(STATUS_STORE_Refused_OutOfResources,
                                         "no retrieval waiting for this study here");
    }
    detail::StoreTarget target;
    target.dest_dir = dest_dir;
    target.on_stored = [&](const std::string&, const std::string& sop, std::uint64_t bytes) {
      std::lock_guard<std::mutex> lock(mutex);
      if (stored.insert(sop).second) ++total.received;
      total.bytes += bytes;
    };
    return target;
  };

  for (auto& req : requests) {
    const Uint16 id = detail::next_message_id();
    RetrieveExchange ex(assoc, true, on_progress, should_abort, total);
    ex.on_store = [&](T_ASC_PresentationContextID store_pres, T_DIMSE_C_StoreRQ& rq) {
      const auto out = detail::store_instance(assoc.get(), store_pres, rq, dest_dir, resolve,
                                              peer.timeouts.dimse_s, false);
      if (!out.network_ok) {
        const PacsError e = detail::network_error(out.cond, assoc.where());
        assoc.abort();
        throw e;
      }
      return true;
    };
    ex.run(pres, id, model, *req.ids, req.label);
  }
  return total;
}

}  // namespace p2x::pacs
