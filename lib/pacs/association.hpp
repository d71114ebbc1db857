// Internal: one requested association (RAII over DCMTK's T_ASC_Network/T_ASC_Association),
// error classification of DCMTK conditions into PacsError, and small DIMSE helpers.
#pragma once

#include "pacs/pacs.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <cstddef>
#include <string>
#include <vector>

class DcmItem;

namespace p2x::pacs::detail {

// Presentation contexts one association can carry (odd IDs 1..255).
constexpr std::size_t kMaxContexts = 128;

struct ContextRequest {
  std::string abstract_syntax;
  std::vector<std::string> transfer_syntaxes;
  T_ASC_SC_ROLE role = ASC_SC_ROLE_DEFAULT;
};

// A presentation context the peer accepted, with the one transfer syntax it chose.
struct AcceptedContext {
  T_ASC_PresentationContextID id = 0;
  std::string abstract_syntax, transfer_syntax;
};

// Transfer syntax lists used when proposing contexts.
const std::vector<std::string>& uncompressed_syntaxes();  // explicit LE, implicit LE
// Groups proposed one context each for C-GET (uncompressed first, then lossless, lossy...).
const std::vector<std::vector<std::string>>& get_syntax_groups();
// Storage SOP classes proposed for C-GET when the study's are not known (the PACS returned
// neither SOPClassesInStudy nor SOPClassUID at IMAGE level): the classes of the studies sites
// import, images first, the private Siemens CSA Non-Image class included.
const std::vector<std::string>& default_get_sop_classes();
// Whether instances of the class may be held compressed (an image class, or one DCMTK does not
// know, such as a private class): such classes are also proposed with the compressed transfer
// syntax groups; the others (reports, key objects, presentation states, PDFs, RT plans and
// structure sets) only uncompressed, as they are always held.
bool may_be_compressed(const std::string& sop_class);
// "RTPlanStorage (1.2.840.10008.5.1.4.1.1.481.5)"; an unknown (private) class: its UID.
std::string sop_class_name(const std::string& sop_class);
// The names of the classes, ", "-separated.
std::string sop_class_names(const std::vector<std::string>& sop_classes);

class Association {
 public:
  // Connects and negotiates; throws PacsError (Connect/Rejected/Timeout/Protocol).
  // `what` names the operation for messages ("C-FIND", ...).
  Association(const Peer& peer, const std::vector<ContextRequest>& contexts,
              const std::string& what);
  ~Association();  // releases if still open (never throws)
  Association(const Association&) = delete;
  Association& operator=(const Association&) = delete;

  T_ASC_Association* get() const { return assoc_; }
  const Peer& peer() const { return peer_; }
  // Accepted context for the abstract syntax (0 if none).
  T_ASC_PresentationContextID context_for(const std::string& abstract_syntax) const;
  // Context or throw PacsError(Rejected) saying the peer did not accept `abstract_syntax`.
  T_ASC_PresentationContextID require_context(const std::string& abstract_syntax) const;
  // Every accepted context in proposal order (several per abstract syntax when proposed so,
  // e.g. one per transfer syntax).
  std::vector<AcceptedContext> accepted_contexts() const;

  // Names the operation for messages from now on (an association used for several kinds).
  void set_what(const std::string& what) { what_ = what; }
  void release();  // A-RELEASE (abort if that fails)
  void abort();    // close the connection at once (what the peer sees as an abort)
  void drop();     // same
  // "<what> on AE@host:port"
  std::string where() const;

 private:
  Peer peer_;
  std::string what_;
  T_ASC_Network* net_ = nullptr;
  T_ASC_Association* assoc_ = nullptr;
};

// C-MOVE of `what` (all its requests) on an open association with an accepted MOVE context
// (Study Root). Used by Client::move and Session::move; the caller releases the association.
RetrieveResult move_on(Association& assoc, const Selection& what, const ProgressFn& on_progress,
                       const AbortFn& should_abort);

// Contexts for C-GET: the GET model (Study Root) and the storage SOP classes (empty: the
// default_get_sop_classes()) with us as SCP, leaving room for `reserved` other contexts. Every
// class first gets an uncompressed context; then, group by group, the compressed transfer syntax
// groups for the classes that may be held compressed, as far as room is left. Classes beyond
// room for even one context each are left out (listed in left_out, in the order given).
struct GetProposal {
  std::vector<ContextRequest> contexts;
  std::vector<std::string> classes;   // the storage classes proposed (no duplicates)
  std::vector<std::string> left_out;  // those that did not fit
};
GetProposal get_contexts(const std::vector<std::string>& sop_classes, std::size_t reserved);
// The classes of `wanted` the peer accepted no context for (on a C-GET association).
std::vector<std::string> unaccepted_classes(const Association& assoc,
                                            const std::vector<std::string>& wanted);
// PacsError(Rejected, not transient) saying that the storage contexts of `classes` could not
// be negotiated for a C-GET at `where` ("C-GET AE@host:port"), naming each class and why.
PacsError not_negotiated(const std::string& where, const std::vector<std::string>& classes,
                         const std::string& why);
// Why a proposal's left_out classes could not be negotiated (for not_negotiated).
std::string too_many_classes(const GetProposal& proposal);
// Throws not_negotiated() for the classes (of the study) the peer accepted no context for.
void require_classes(const Association& assoc, const std::vector<std::string>& classes);
// "<what> AE@host:port", as Association::where() says it.
std::string where_of(const Peer& peer, const std::string& what);
// C-GET of `what` on an open association with get_contexts(); instances are written into
// dest_dir as by Client::get. The caller releases the association.
RetrieveResult get_on(Association& assoc, const Selection& what, const std::string& dest_dir,
                      const ProgressFn& on_progress, const AbortFn& should_abort);

// Process-unique DIMSE message IDs (the Move Originator Message ID identifies our C-MOVE at the
// Storage SCP, so IDs must not repeat between concurrent associations).
Uint16 next_message_id();

// PacsError for a failed DCMTK call during an operation.
PacsError network_error(const OFCondition& cond, const std::string& where);
bool is_timeout(const OFCondition& cond);

// Tag value as std::string (trimmed), "" when absent.
std::string get_string(DcmItem& item, const DcmTagKey& key);
// All values of a multi-valued string element.
std::vector<std::string> get_strings(DcmItem& item, const DcmTagKey& key);
// Error Comment (0000,0902) of a status detail, "" if none.
std::string error_comment(DcmDataset* status_detail);

// Move registry: Client::move registers the message ID of each C-MOVE with the study it
// retrieves; the Storage SCP looks up (Move Originator AE, Message ID) of incoming C-STOREs.
void register_move(const std::string& our_ae, Uint16 message_id, const std::string& study_uid);
void unregister_move(const std::string& our_ae, Uint16 message_id);
std::string lookup_move(const std::string& originator_ae, Uint16 message_id);

}  // namespace p2x::pacs::detail
