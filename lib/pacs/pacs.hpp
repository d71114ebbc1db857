// pacs: the DICOM network side of pacs2xnat. A read-only SCU towards the clinical PACS
// (C-ECHO, C-FIND study/series/image, C-MOVE to our AE, C-GET), the Storage SCP that lands
// incoming instances, unchanged as received, in the directory of the retrieval waiting for them,
// and a C-STORE SCU that sends a study's files to a DICOM receiver (XNAT's, never the PACS).
// No DCMTK types in this header; the module knows nothing about the job store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace p2x::pacs {

// Once per process, before any other call of this module: sets TCP_NODELAY=1 in the process
// environment (DCMTK reads it per connection; without it every C-STORE waits ~40 ms), turns
// off DCMTK's reverse DNS lookup of incoming peers (they are named by IP address), checks
// that the DICOM data dictionary is loaded (throws std::runtime_error naming DCMDICTPATH if
// not) and routes DCMTK's own log (oflog) into spdlog at WARN and above. Idempotent.
void init_network();

struct Timeouts {
  int connect_s = 10;  // TCP connect (per association: connect.hpp)
  int acse_s = 30;     // association negotiation and release
  int dimse_s = 60;    // one C-ECHO/C-FIND response, one data set of a C-GET, one C-STORE
  int idle_s = 120;    // C-MOVE/C-GET without any response, used when no should_abort is given
};

struct Peer {
  std::string ae_title, host;
  std::uint16_t port = 104;
  std::string our_ae;  // calling AE title and the C-MOVE destination
  Timeouts timeouts;
  // The calling AE titles the PACS sends C-STOREs from; empty: ae_title.
  std::vector<std::string> storing_aes;
};

enum class ErrorKind {
  Connect,      // TCP connect failed (refused, no route, DNS, connect timeout)
  Rejected,     // A-ASSOCIATE-RJ (or nothing we need was accepted)
  Timeout,      // no answer within the ACSE/DIMSE timeout
  Protocol,     // peer aborted, network closed, malformed or unexpected message
  Failed,       // DIMSE failure status from the peer (message carries status + text)
  Aborted,      // we aborted: should_abort() said so or idle time ran out
  ReceiverBusy  // a C-MOVE failed because our own Storage SCP had no free association for the
                // PACS's C-STOREs (transient: wait for a free slot, no fault of the study)
};
const char* to_string(ErrorKind kind);

class PacsError : public std::runtime_error {
 public:
  PacsError(ErrorKind kind, const std::string& what, bool transient);
  ErrorKind kind() const { return kind_; }
  // Whether repeating the same request later may succeed (connect/timeout/temporary reject).
  bool transient() const { return transient_; }

 private:
  ErrorKind kind_;
  bool transient_;
};

// C-FIND STUDY keys; empty fields are not matched. Use accession, or patient_id + study_date,
// or study_uid. modality filters on ModalitiesInStudy (also checked on the answers).
struct Query {
  std::string accession, patient_id, study_date, study_uid, modality;
};

struct StudyMatch {
  std::string study_uid, patient_id, patient_name, study_date, accession, description;
  std::vector<std::string> modalities;  // ModalitiesInStudy as returned (may be empty)
  // SOPClassesInStudy (0008,0062) as returned; empty when the PACS does not support it.
  std::vector<std::string> sop_classes;
  int instances = -1;  // NumberOfStudyRelatedInstances, -1 when the PACS did not say
};

struct SeriesInfo {
  std::string series_uid, modality, description;
  int number = 0;
  int expected = -1;  // instances: NumberOfSeriesRelatedInstances or an IMAGE-level count
};

struct InstanceInfo {
  std::string sop_uid, sop_class;  // sop_class "" when the PACS does not return it (dcmqrscp)
};

// One pending C-MOVE/C-GET response (remaining -1 when not sent), or for C-GET also one more
// instance written (received counts files this SCU stored).
struct Progress {
  int remaining = -1, completed = 0, failed = 0, warning = 0;
  int received = 0;
};

struct RetrieveResult {
  int completed = 0, failed = 0, warning = 0;  // sub-operations as the PACS reported them
  std::uint16_t status = 0;                    // final DIMSE status (0 success, 0xB000 warning)
  std::string status_text;                     // readable status (+ ErrorComment if any)
  int received = 0;                            // C-GET: files written into dest_dir
  std::uint64_t bytes = 0;                     // C-GET: bytes written
  // C-MOVE: associations or C-STOREs of the PACS's AE titles that our Storage SCP turned away
  // for lack of a free association while this retrieval ran (failed sub-operations then
  // mean "our SCP was full", not "the PACS could not send").
  int receiver_busy = 0;
};

using ProgressFn = std::function<void(const Progress&)>;
using AbortFn = std::function<bool()>;

// Selection of what to retrieve: the whole study (both lists empty), some series
// (series_uids), or some instances of one series (series_uids has exactly that series).
// sop_classes: the storage SOP classes of what it selects, as C-FIND reported them (SOP Classes
// in Study, or SOPClassUID per instance); a C-GET proposes exactly these (with us as SCP) and
// fails, naming them, when the PACS accepts no context for one. Empty: not known; a C-GET then
// proposes a built-in list of common classes. (C-MOVE needs none: the PACS proposes them.)
struct Selection {
  std::string study_uid;
  std::vector<std::string> series_uids;
  std::vector<std::string> sop_uids;
  std::vector<std::string> sop_classes{};
};

// Storage SOP classes one C-GET association can negotiate: 128 presentation contexts, less the
// C-FIND and C-GET models, one (uncompressed) context per class at least. A study with more
// is retrieved over several associations, series by series.
constexpr std::size_t kMaxGetSopClasses = 126;

// C-STORE of a study (Client::send_study).
struct SendOptions {
  // Set as Patient Comments (0010,4000) of every instance sent, in memory only (the files on
  // disk are never modified); "" leaves the element as it is. XNAT's DICOM receiver files
  // instances by this text (xnat::routing_comment).
  std::string patient_comments;
};

// One file for Client::send_files, with the size and CRC-32 validation found in it.
struct SendFile {
  std::string path;
  std::uint64_t size = 0;
  std::uint32_t crc = 0;
};

// Client::send_files found a file that is no longer the one validated (size or CRC-32): the
// send stopped before that file went out. Transient: fetch and validate the file again.
class FileChanged : public PacsError {
 public:
  FileChanged(std::string file, const std::string& what)
      : PacsError(ErrorKind::Aborted, what, true), path(std::move(file)) {}
  std::string path;
};

struct SendResult {
  int sent = 0;    // instances the receiver acknowledged (success or warning status)
  int failed = 0;  // files not sent or refused by the receiver
  std::vector<std::string> failures;  // "file: reason" for each failed file
};

// SCU towards one PACS (or, for send_study, a DICOM receiver). Every call opens its own
// association and releases it; calls on one Client may run concurrently from several threads.
// Throws PacsError.
class Client {
 public:
  explicit Client(Peer peer);
  const Peer& peer() const { return peer_; }

  // C-ECHO round trip including association set-up, in seconds.
  double echo();
  // Matches, checked against the query (a PACS may ignore keys; ModalitiesInStudy is then
  // filled from a SERIES-level C-FIND). Non-ASCII keys are sent as ISO_IR 192; answers are
  // converted to UTF-8 from their SpecificCharacterSet. Throws std::invalid_argument without
  // accession, patient ID or study UID.
  std::vector<StudyMatch> find_studies(const Query& query);
  // Series of a study with expected instance counts (NumberOfSeriesRelatedInstances when the
  // PACS returns it, otherwise counted with an IMAGE-level C-FIND per series), by number.
  std::vector<SeriesInfo> find_series(const std::string& study_uid);
  std::vector<InstanceInfo> find_instances(const std::string& study_uid,
                                           const std::string& series_uid);

  // C-MOVE the selection to peer().our_ae. on_progress is called for every pending
  // response; should_abort is polled about once a second (and per response): when it says
  // true a C-CANCEL is sent (2 s for the PACS to confirm), the connection closed and
  // PacsError(Aborted) thrown. Without should_abort, idle_s without any response aborts.
  // Instances arrive at the StorageScp (register the Route first). Series and instance
  // selections are sent as one C-MOVE per series / per 200 UIDs on one association, counts
  // summed. Warning/failure statuses that report
  // sub-operations are returned (the caller decides); a failure without sub-operations
  // throws PacsError(Failed): transient (the PACS could not deliver to us now, e.g. our
  // Storage SCP was full) unless the status names a lasting cause (0xA801 unknown move
  // destination, 0xA900, 0x0122).
  RetrieveResult move(const Selection& what, const ProgressFn& on_progress = {},
                      const AbortFn& should_abort = {});

  // C-GET the selection; instances are written by this SCU into dest_dir/<SOPInstanceUID>.dcm
  // (same writer as the Storage SCP). sop_classes: storage SOP classes to negotiate (e.g. from
  // find_instances); empty -> what.sop_classes; both empty -> a built-in list of common
  // classes. Given classes the PACS accepts no context for, or more than fit in one
  // association, throw PacsError(Rejected, not transient) naming them, before any C-GET.
  // Instances of another study
  // are refused; a second copy of an instance with different content goes to the quarantine
  // (quarantine_dir_for(dest_dir)), never over the first. Files are written, not fsynced
  // (the pipeline's spool is fetched again after a power loss instead, see
  // pipeline/spool.hpp).
  RetrieveResult get(const Selection& what, const std::string& dest_dir,
                     const std::vector<std::string>& sop_classes = {},
                     const ProgressFn& on_progress = {}, const AbortFn& should_abort = {});

  // C-STORE of every regular *.dcm file under study_dir (recursively, hidden files skipped,
  // in path order) over ONE association: a receiver such as XNAT's builds a session once the
  // study has been idle for a while, so a study sent in bursts could become several sessions.
  // Files are loaded one at a time (memory does not grow with study size) and sent in their
  // own transfer syntax (presentation contexts per SOP class and syntax found, plus an
  // uncompressed fallback per class); a file whose syntax was not accepted is converted only
  // when that is lossless, else it fails. Per-file problems (unreadable file, no accepted
  // context, lossy conversion needed, failure status from the receiver) are counted in the
  // result while the rest is still sent. No files: an empty result without connecting.
  // Throws PacsError: transient for connect failures, transient rejections, timeouts and a
  // connection lost during the transfer (send the whole study again); not transient for a
  // permanent rejection (e.g. unknown called AE title) or when the receiver accepts none of
  // the proposed contexts. std::runtime_error when study_dir is not a readable directory.
  SendResult send_study(const std::string& study_dir, const SendOptions& opt = {});
  // The same for exactly these files (the validated list), in this order. Each file is read
  // whole into memory through dicomfile's CRC reader before it is sent, and its size and
  // CRC-32 must equal the validated ones, so the bytes DCMTK sends come from the bytes
  // validation accepted; at the first difference the association is aborted and FileChanged
  // is thrown (that file was not sent).
  SendResult send_files(const std::vector<SendFile>& files, const SendOptions& opt = {});

 private:
  Peer peer_;
};

namespace detail {
class Association;
}

// Several C-FINDs and C-MOVEs (or C-GETs) on one association: one set-up instead of one per
// operation (a PACS such as dcmqrscp forks a process for each association, ~50 ms on the test
// VM). The association is opened by the first operation and proposes the FIND model and the
// MOVE model, or with for_get the GET model and the storage classes Client::get proposes by
// default. A C-GET whose selection names SOP classes this association was not negotiated for
// releases it and opens one for those classes (and the FIND model). After an error the next
// operation opens a new one. close() releases it; the
// destructor releases an association still open. An open Session is one association towards
// the PACS's limit: close it before opening another one. One thread at a time.
class Session {
 public:
  explicit Session(const Client& client, bool for_get = false);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  std::vector<StudyMatch> find_studies(const Query& query);  // as Client::find_studies
  std::vector<SeriesInfo> find_series(const std::string& study_uid);
  std::vector<InstanceInfo> find_instances(const std::string& study_uid,
                                           const std::string& series_uid);
  // As Client::move. If the PACS did not accept the MOVE model on this association, it is
  // closed and the move gets an association of its own.
  RetrieveResult move(const Selection& what, const ProgressFn& on_progress = {},
                      const AbortFn& should_abort = {});
  // As Client::get with what.sop_classes (empty: the default storage classes); same fallback
  // for the GET model.
  RetrieveResult get(const Selection& what, const std::string& dest_dir,
                     const ProgressFn& on_progress = {}, const AbortFn& should_abort = {});
  void close();

 private:
  detail::Association& association(const char* what);
  // An association for a C-GET of `classes` (empty: the defaults): the open one when it was
  // negotiated for all of them, else a new one (FIND, GET and those classes).
  detail::Association& get_association(const std::vector<std::string>& classes);
  template <typename F>
  auto run(const char* what, F&& query) -> decltype(query(std::declval<detail::Association&>()));
  Peer peer_;
  bool for_get_;
  std::unique_ptr<detail::Association> assoc_;
  // Storage classes proposed on assoc_ (empty for a FIND/MOVE association), and whether they
  // were the default list.
  std::vector<std::string> proposed_;
  bool proposed_defaults_ = false;
};

class ReceivedSink;

struct ScpOptions {
  // Where instances not attributable to a retrieval by their Move Originator wait while their
  // StudyInstanceUID is read (then renamed into the route's directory; best on the same
  // filesystem as the spool). Empty: <system temp>/p2x-scp-<port>. Unused with a sink.
  std::string staging_dir;
  // The owner of the received files (received_sink.hpp; not owned, outlives the SCP): its
  // staging folder, and where a differing second copy of an instance is kept apart. Null:
  // staging_dir above, and quarantine_file() beside the route's directory.
  const ReceivedSink* sink = nullptr;
  // Calling AE titles allowed to associate (C-ECHO, C-STORE); others are rejected at
  // A-ASSOCIATE time ("calling AE title not recognized") and never take a slot. Empty: any.
  std::vector<std::string> allowed_calling_aes{};
  int idle_s = 60;  // release an association with no DIMSE message for this long
  // Of the max_associations, at most this many from one IP address and from one calling AE
  // title (0: no cap of its own): one host or one title cannot take every slot.
  int max_per_address = 0;
  int max_per_ae = 0;
  // When no slot is free, an association from an AE title a retrieval waits for (a sender of
  // a route) is accepted on probation instead of being rejected: its first C-STORE into a
  // retrieval takes the slot of the association that stored nothing for longest (at least
  // fresh_grace_ms since it opened when it never stored, busy_idle_s since its last C-STORE
  // otherwise), which is closed; without such a C-STORE within probation_s it is closed. At
  // most max_associations wait on probation (a newcomer replaces the oldest one of its own
  // address or AE title when that one has its share, else the oldest).
  int busy_idle_s = 5;
  int fresh_grace_ms = 1000;
  int probation_s = 3;
  int acse_s = 30;
  int dimse_s = 60;  // one data set
  std::uint32_t max_pdu = 16384;
  // A connection has request_s to deliver its whole A-ASSOCIATE-RQ (a real SCU sends it at
  // once); at most max_pending connections wait for theirs, max_pending_per_peer from one IP
  // address, more are closed at once. The accept loop itself never waits for a peer's bytes.
  int request_s = 5;
  int max_pending = 64;
  int max_pending_per_peer = 8;
  // An association none of whose instances found a retrieval (no Move Originator, so they are
  // received into staging_dir before their study is known) may land this many bytes there;
  // beyond it the association is aborted.
  std::uint64_t max_unrouted_bytes = std::uint64_t{256} << 20;
  // true: fsync every file before answering its C-STORE (~4 ms per file on the test VM,
  // 3x slower than the raw tools). false (default): a C-STORE success means "written"; the
  // files are durable once Route::sync() returned, if the caller asks for it. (The pipeline
  // does not: its spool is a cache of the PACS, re-fetched after a power loss, see
  // pipeline/spool.hpp; fsyncing it made retrieval 15-30% slower than the raw tools.)
  bool fsync_each_file = false;
};

// What the Storage SCP has seen since start (all counters only grow).
struct ScpCounters {
  std::uint64_t received = 0;          // instances stored, all routes
  std::uint64_t refused = 0;           // instances refused (no route, bad UIDs, write errors)
  std::uint64_t refused_unread = 0;    // of those, refused before any byte was written
  std::uint64_t rejected_calling = 0;  // associations rejected: calling AE title not allowed
  std::uint64_t rejected_busy = 0;     // associations rejected, or C-STOREs of associations on
                                       // probation refused, for lack of a free slot
  std::uint64_t evicted = 0;           // idle associations closed to give their slot to one
                                       // storing into a retrieval
  std::uint64_t probation_closed = 0;  // associations on probation closed without storing
  std::uint64_t dropped = 0;           // connections closed without an A-ASSOCIATE-RQ in time,
                                       // beyond max_pending, or sending something else
  std::uint64_t idle_closed = 0;       // associations closed after idle_s without a message
  std::uint64_t unrouted_aborted = 0;  // associations aborted at max_unrouted_bytes
  // Now, not counted up: associations holding a slot (probation included), and connections
  // accepted that wait for their A-ASSOCIATE-RQ.
  std::uint64_t open_associations = 0;
  std::uint64_t waiting_connections = 0;
};

// Quarantine: instances that reached a retrieval's directory (dest_dir) but must not be used
// (here: a second copy of an instance with different content; in the pipeline's validation:
// instances of series the PACS did not report) are moved, never deleted or written over, into
// quarantine_dir_for(dest_dir) = <parent of dest_dir>/.quarantine/<name of dest_dir>: a hidden
// sibling, never inside dest_dir, so whatever reads or uploads dest_dir never sees them. Each
// is listed with its reason in reasons.txt there (one line: file name, TAB, reason).
std::string quarantine_dir_for(const std::string& dest_dir);
// Moves `file` (on any filesystem) into quarantine_dir_for(dest_dir) as `name` (name~2, ~3...
// when taken; never replacing a file) and records `reason`. Safe from several threads.
// Returns the new path. Throws std::runtime_error naming the file.
std::string quarantine_file(const std::string& file, const std::string& dest_dir,
                            const std::string& name, const std::string& reason);
struct QuarantinedFile {
  std::string name, reason;
};
// What the quarantine of dest_dir holds, in the order it came (empty when there is none).
std::vector<QuarantinedFile> quarantined_files(const std::string& dest_dir);
// The same two for a quarantine folder its owner names (the pipeline's Spool): keep_file_in()
// moves `file` into `dir` as quarantine_file() does; files_kept_in() lists `dir`.
std::string keep_file_in(const std::string& file, const std::string& dir, const std::string& name,
                         const std::string& reason);
std::vector<QuarantinedFile> files_kept_in(const std::string& dir);

// Storage SCP on our AE/port. Accepts every storage SOP class (any DICOM transfer syntax DCMTK
// knows, compressed included, taking the sender's first proposed one) and C-ECHO; associations
// not addressed to our AE title are rejected ("called AE title not recognised"), so are calling
// AE titles not in allowed_calling_aes ("calling AE title not recognised", logged once per AE
// and address); at most max_associations at once, max_per_address from one address and
// max_per_ae from one calling AE title (more are rejected as temporary, or from a PACS being
// retrieved from accepted on probation: see ScpOptions::busy_idle_s), idle ones closed after
// idle_s. Files are written as received to dest_dir/<SOPInstanceUID>.dcm of the
// route for their StudyInstanceUID (temp file, then a rename that never replaces: temp files
// are hidden ".p2x-*.part"). An instance received again with the same data set is kept once (a
// PACS repeating itself); with a different data set the first copy stays and the new one is
// quarantined (see above), both answered with success.
// Refusals, all counted and logged, none written into a route's directory:
// - a study nobody expects: 0xA700 and an ErrorComment; before any byte is written when that
//   is known from the request alone (a Move Originator naming our AE title with an ID that is
//   none of our live C-MOVEs, or a C-MOVE whose study has no route; no route at all);
// - a calling AE title the study's route does not accept, or a C-STORE sent for a C-MOVE that
//   is not the route's: 0x0124 (Refused: Not authorized) and an ErrorComment.
class StorageScp {
 public:
  class Route;

  StorageScp(std::string ae_title, std::uint16_t port, int max_associations,
             ScpOptions options = {});
  ~StorageScp();  // stop()
  StorageScp(const StorageScp&) = delete;
  StorageScp& operator=(const StorageScp&) = delete;

  // Binds the port now (throws PacsError(Connect) naming the port if taken) and starts the
  // accept loop thread.
  void start();
  // Stops accepting, aborts open associations and joins all threads (~1 s at most).
  void stop();
  std::uint16_t port() const;
  const std::string& ae_title() const;

  // Route instances of study_uid into dest_dir (created if missing) until the handle is
  // destroyed, from the calling AE titles in `senders` only (the PACS being retrieved from:
  // even when several PACSes may store to us, one may not store into another's retrieval).
  // A C-STORE carrying a Move Originator must name a C-MOVE of our AE title for this study.
  // A second expect() for a study that has a route into the same dest_dir from the same
  // senders shares it (parallel retrievals of one study's series; received() counts for all;
  // the route ends with its last handle). Throws std::logic_error if the study has a route
  // into another directory or from other senders, std::invalid_argument without senders.
  std::unique_ptr<Route> expect(const std::string& study_uid, const std::string& dest_dir,
                                std::vector<std::string> senders);

  std::uint64_t refused() const;   // counters().refused
  std::uint64_t received() const;  // counters().received
  ScpCounters counters() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

class StorageScp::Route {
 public:
  struct State;
  explicit Route(std::shared_ptr<State> state, std::function<void()> on_close);
  ~Route();  // unregisters (files received so far stay; they are not synced)
  Route(const Route&) = delete;
  Route& operator=(const Route&) = delete;

  const std::string& study_uid() const;
  const std::string& dest_dir() const;
  int received() const;  // distinct files stored (a re-sent instance counts once)
  int refused() const;   // C-STOREs refused: a calling AE or C-MOVE not of this route
  // Associations (or C-STOREs on probation) from the route's AE titles turned away because
  // the SCP had no free slot, since the route was made.
  int busy_refused() const;
  int quarantined() const;  // second copies with different content, quarantined
  std::uint64_t bytes() const;
  std::chrono::steady_clock::time_point last_activity() const;  // creation or last file
  std::vector<std::string> files() const;                       // absolute paths, in arrival order
  // Waits until received() >= n or the timeout passes; returns received() >= n.
  bool wait_for(int n, std::chrono::milliseconds timeout) const;
  // Makes every file received so far durable (fsync of the files, then of dest_dir), for
  // callers that need it before recording the study. Throws std::runtime_error naming the
  // first file that could not be synced.
  void sync();

 private:
  std::shared_ptr<State> state_;
  std::function<void()> on_close_;
};

}  // namespace p2x::pacs
