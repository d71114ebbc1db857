// Storage SCP, its network door: our own listening socket and accept loop, which never waits
// for a peer's bytes; one thread per connection that first waits (briefly, a bounded number at
// once) until the whole A-ASSOCIATE-RQ has arrived and only then lets DCMTK build the
// association from the socket; the called/calling AE checks, the association slots,
// negotiation, and the DIMSE loop with its idle timeout. Where instances go: storage_routes.cpp.
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"
#include "pacs/prompt_ack.hpp"
#include "pacs/received_sink.hpp"
#include "pacs/storage_scp_impl.hpp"
#include "text/text.hpp"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/dul.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace p2x::pacs {

using Clock = std::chrono::steady_clock;

namespace {

constexpr int kPollMs = 200;  // how often waiting threads look at `stopping`
constexpr int kListenBacklog = 64;
constexpr std::size_t kPduHeader = 6;  // type, reserved, 32-bit big-endian length
constexpr unsigned char kAssociateRq = 0x01;
// Largest A-ASSOCIATE-RQ we wait for (DCMTK's own limit, dcmAssociatePDUSizeLimit, is 1 MB;
// 128 contexts with a dozen transfer syntaxes each are ~40 KB).
constexpr std::uint32_t kMaxRequestPdu = 1u << 20;
constexpr std::size_t kMaxLoggedPeers = 1024;

// DCMTK builds an association from an already accepted socket only through the process-wide
// dcmExternalSocketHandle, which ASC_receiveAssociation (and ASC_initializeNetwork) read: every
// use sets it, makes the call and resets it, under this lock.
std::mutex g_external_socket_mutex;

class ExternalSocket {
 public:
  explicit ExternalSocket(int fd) : lock_(g_external_socket_mutex) {
    dcmExternalSocketHandle.set(fd);
  }
  ~ExternalSocket() { dcmExternalSocketHandle.set(-1); }
  ExternalSocket(const ExternalSocket&) = delete;
  ExternalSocket& operator=(const ExternalSocket&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
};

void reject(T_ASC_Association* assoc, T_ASC_RejectParametersResult result,
            T_ASC_RejectParametersSource source, T_ASC_RejectParametersReason reason) {
  T_ASC_RejectParameters rej;
  rej.result = result;
  rej.source = source;
  rej.reason = reason;
  ASC_rejectAssociation(assoc, &rej);
}

// Storage classes (known or private); not the query/retrieve or other services.
bool acceptable_abstract_syntax(const char* uid) {
  if (std::strcmp(uid, UID_VerificationSOPClass) == 0) return true;
  if (dcmIsaStorageSOPClassUID(uid, ESSC_All)) return true;
  return dcmFindNameOfUID(uid) == nullptr;  // unknown to DCMTK: private storage class
}

std::string peer_address(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  char text[INET_ADDRSTRLEN] = "?";
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      addr.sin_family == AF_INET)
    ::inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
  return text;
}

bool is_resource_error(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

}  // namespace

// --- accepting connections -------------------------------------------------------------------

void StorageScp::Impl::open_listener() {
  const auto fail = [&](const std::string& why) {
    throw PacsError(ErrorKind::Connect,
                    "Storage SCP " + ae_title + ": cannot listen on port " + std::to_string(port) +
                        " (" + why + "); is another process using it?",
                    false);
  };
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, kListenBacklog) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    fail(why);
  }
  // DCMTK's acceptor network, made while an external socket is set so that it opens no
  // listening socket of its own: it only builds associations from the sockets we accept.
  OFCondition cond;
  {
    ExternalSocket external(fd);
    cond = ASC_initializeNetwork(NET_ACCEPTOR, port, options.acse_s, &net);
  }
  if (cond.bad()) {
    ::close(fd);
    net = nullptr;
    fail(cond.text());
  }
  // Senders with Nagle on must not wait for our delayed ACKs (prompt_ack.hpp).
  detail::use_prompt_ack(net);
  listen_fd = fd;
}

void StorageScp::Impl::accept_loop() {
  int backoff_ms = 0;
  auto last_resource_log = Clock::time_point{};
  while (!stopping.load()) {
    reap(false);
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (!is_resource_error(err)) continue;  // e.g. the peer gave up (ECONNABORTED)
      // Out of descriptors or memory: the connection stays in the backlog; wait a little
      // longer each time instead of spinning, and say so now and then.
      backoff_ms = std::min(1000, std::max(50, backoff_ms * 2));
      if (Clock::now() - last_resource_log > std::chrono::seconds(10)) {
        last_resource_log = Clock::now();
        spdlog::error("pacs scp {}: accepting a connection failed: {} (retrying)", ae_title,
                      std::strerror(err));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
      continue;
    }
    backoff_ms = 0;
    const std::string peer = peer_address(fd);
    std::string why;
    if (!admit(peer, why)) {
      ++dropped;
      log_once("pending:" + peer, "connection from " + peer + " closed: " + why);
      ::close(fd);
      continue;
    }
    spawn_connection(fd, peer);
  }
}

bool StorageScp::Impl::admit(const std::string& peer, std::string& why) {
  std::lock_guard<std::mutex> lock(pending_mutex);
  if (pending >= options.max_pending) {
    why = std::to_string(pending) + " connections already wait for their A-ASSOCIATE-RQ";
    return false;
  }
  int& mine = pending_by_peer[peer];
  if (mine >= options.max_pending_per_peer) {
    why = std::to_string(mine) +
          " connections from there already wait for their "
          "A-ASSOCIATE-RQ";
    return false;
  }
  ++mine;
  ++pending;
  return true;
}

void StorageScp::Impl::done_waiting(const std::string& peer) {
  std::lock_guard<std::mutex> lock(pending_mutex);
  --pending;
  const auto it = pending_by_peer.find(peer);
  if (it != pending_by_peer.end() && --it->second <= 0) pending_by_peer.erase(it);
}

void StorageScp::Impl::spawn_connection(int fd, const std::string& peer) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  try {
    std::lock_guard<std::mutex> lock(workers_mutex);
    workers.push_back({std::thread([this, fd, peer, done] {
                         try {
                           handle_connection(fd, peer);
                         } catch (const std::exception& e) {
                           spdlog::error("pacs scp {}: {}", ae_title, e.what());
                         } catch (...) {
                           spdlog::error("pacs scp {}: unknown error", ae_title);
                         }
                         done->store(true);
                       }),
                       done});
  } catch (const std::exception& e) {
    done_waiting(peer);
    ::close(fd);
    spdlog::error("pacs scp {}: cannot start a connection thread: {}", ae_title, e.what());
  }
}

void StorageScp::Impl::reap(bool all) {
  std::list<Worker> finished;
  {
    std::lock_guard<std::mutex> lock(workers_mutex);
    for (auto it = workers.begin(); it != workers.end();) {
      if (all || it->done->load()) {
        finished.push_back(std::move(*it));
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : finished)
    if (w.thread.joinable()) w.thread.join();
}

void StorageScp::Impl::log_once(const std::string& key, const std::string& text) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(logged_mutex);
    first = logged.size() < kMaxLoggedPeers && logged.insert(key).second;
  }
  if (first) {
    spdlog::warn("pacs scp {}: {} (logged once per peer; counted)", ae_title, text);
  } else {
    spdlog::debug("pacs scp {}: {}", ae_title, text);
  }
}

// --- one connection: its A-ASSOCIATE-RQ, the checks, a slot ----------------------------------

void StorageScp::Impl::handle_connection(int fd, const std::string& peer) {
  std::string why;
  bool ready = false;
  try {
    ready = wait_for_request(fd, why);
  } catch (...) {
    done_waiting(peer);
    ::close(fd);
    throw;
  }
  done_waiting(peer);
  if (!ready) {
    ++dropped;
    if (!stopping.load()) log_once("silent:" + peer, "connection from " + peer + " closed: " + why);
    ::close(fd);
    return;
  }
  ScpAssociation a;
  a.assoc = adopt(fd);
  if (a.assoc == nullptr) return;
  if (check_titles(a) && take_slot(a)) {
    serve(a);
    release_slot(a);
  } else {
    ASC_dropAssociation(a.assoc);
  }
  ASC_destroyAssociation(&a.assoc);
}

bool StorageScp::Impl::wait_for_request(int fd, std::string& why) {
  const auto deadline = Clock::now() + std::chrono::seconds(options.request_s);
  std::vector<unsigned char> buf(kPduHeader);
  std::size_t need = kPduHeader;
  bool sized = false;  // the header (type, length) has been looked at
  while (!stopping.load()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      why = "no complete A-ASSOCIATE-RQ within " + std::to_string(options.request_s) + " s";
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(kPollMs, left.count())));
    if (n < 0 && errno != EINTR) {
      why = std::strerror(errno);
      return false;
    }
    if (n <= 0) continue;
    // Peeked, not read: DCMTK reads it below, from the socket's queue, without waiting.
    const ssize_t got = ::recv(fd, buf.data(), need, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0) {
      why = "closed before sending an A-ASSOCIATE-RQ";
      return false;
    }
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      why = std::strerror(errno);
      return false;
    }
    const auto have = static_cast<std::size_t>(got);
    if (!sized && have == kPduHeader) {
      sized = true;
      if (buf[0] != kAssociateRq) {
        why = "first PDU is not an A-ASSOCIATE-RQ (type " + std::to_string(buf[0]) + ")";
        return false;
      }
      const std::uint32_t length = (std::uint32_t{buf[2]} << 24) | (std::uint32_t{buf[3]} << 16) |
                                   (std::uint32_t{buf[4]} << 8) | std::uint32_t{buf[5]};
      if (length > kMaxRequestPdu) {
        why = "A-ASSOCIATE-RQ of " + std::to_string(length) + " bytes announced";
        return false;
      }
      need = kPduHeader + length;
      buf.resize(need);
      // The queue must be able to hold it all while we only peek.
      int rcvbuf = static_cast<int>(2 * need);
      if (need > (std::size_t{48} << 10))
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
      continue;
    }
    if (have >= need) return true;
    // Part of it is here (poll would not wait any more): look again shortly.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  why = "stopping";
  return false;
}

T_ASC_Association* StorageScp::Impl::adopt(int fd) {
  T_ASC_Association* assoc = nullptr;
  OFCondition cond;
  {
    ExternalSocket external(fd);
    cond = ASC_receiveAssociation(net, &assoc, static_cast<long>(options.max_pdu), nullptr, nullptr,
                                  OFFalse, DUL_NOBLOCK, 0);
  }
  if (cond.good()) return assoc;
  ++dropped;
  log_once("bad-rq:" + peer_address(fd),
           "association request from " + peer_address(fd) + " not understood: " + cond.text());
  // The socket belongs to the DUL association when DCMTK made one, else it is still ours.
  if (assoc != nullptr && assoc->DULassociation != nullptr) {
    ASC_dropAssociation(assoc);
  } else {
    ::close(fd);
  }
  ASC_destroyAssociation(&assoc);
  return nullptr;
}

bool StorageScp::Impl::calling_allowed(const std::string& calling) const {
  const auto& allowed = options.allowed_calling_aes;
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), calling) != allowed.end();
}

bool StorageScp::Impl::check_titles(ScpAssociation& a) {
  char calling[64] = {0}, called[64] = {0}, responding[64] = {0};
  ASC_getAPTitles(a.assoc->params, calling, sizeof(calling), called, sizeof(called), responding,
                  sizeof(responding));
  char address[64] = {0}, ours[64] = {0};
  ASC_getPresentationAddresses(a.assoc->params, address, sizeof(address), ours, sizeof(ours));
  a.calling_ae = text::trim(calling);
  a.peer = address;
  // Only associations addressed to our AE title: a PACS configured with the wrong
  // destination should fail visibly rather than deliver into the wrong receiver.
  if (text::trim(called) != ae_title) {
    log_once("called:" + a.calling_ae + "@" + a.peer,
             "association from " + a.where() + " for AE '" + text::trim(called) +
                 "' rejected: called AE title not recognized (not our AE title)");
    reject(a.assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
           ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED);
    return false;
  }
  if (!calling_allowed(a.calling_ae)) {
    ++rejected_calling;
    log_once("calling:" + a.calling_ae + "@" + a.peer,
             "association from " + a.where() +
                 " rejected: calling AE title not recognized (not in "
                 "storage_allowed_calling_aes)");
    reject(a.assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
           ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED);
    return false;
  }
  return true;
}

void StorageScp::Impl::warn_busy(const std::string& text) {
  // An operational condition, not an attack: a warning at most once a minute, with the count.
  const auto busy = rejected_busy.load();
  const auto now_s =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
  auto last = last_busy_warning_s.load();
  const bool warn = now_s - last >= 60 && last_busy_warning_s.compare_exchange_strong(last, now_s);
  const std::string counted = text + " (" + std::to_string(busy) + " refused so far)";
  if (warn) {
    spdlog::warn("pacs scp {}: {}", ae_title, counted);
  } else {
    spdlog::debug("pacs scp {}: {}", ae_title, counted);
  }
}

void StorageScp::Impl::reject_busy(ScpAssociation& a) {
  reject(a.assoc, ASC_RESULT_REJECTEDTRANSIENT, ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
         ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED);
}

bool StorageScp::Impl::negotiate(ScpAssociation& a) {
  T_ASC_Association* assoc = a.assoc;
  const int n = ASC_countPresentationContexts(assoc->params);
  int accepted = 0;
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) continue;
    const char* chosen = nullptr;
    if (acceptable_abstract_syntax(pc.abstractSyntax)) {
      // The sender's first proposal we understand: files arrive as it holds them. Never
      // a deflated one (check_received_file refuses those: see received_check.hpp); a
      // sender offered nothing else transcodes or fails the sub-operation.
      for (int t = 0; t < pc.transferSyntaxCount && chosen == nullptr; ++t) {
        const DcmXfer xfer(pc.proposedTransferSyntaxes[t]);
        if (xfer.getXfer() != EXS_Unknown && xfer.getStreamCompression() == ESC_none)
          chosen = pc.proposedTransferSyntaxes[t];
      }
      if (chosen != nullptr) {
        ASC_acceptPresentationContext(assoc->params, pc.presentationContextID, chosen,
                                      ASC_SC_ROLE_DEFAULT);
        ++accepted;
      } else {
        ASC_refusePresentationContext(assoc->params, pc.presentationContextID,
                                      ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
      }
    } else {
      ASC_refusePresentationContext(assoc->params, pc.presentationContextID,
                                    ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
    }
  }
  if (accepted == 0) {
    reject(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER, ASC_REASON_SU_NOREASON);
    return false;
  }
  ASC_setAPTitles(assoc->params, nullptr, nullptr, ae_title.c_str());
  const OFCondition cond = ASC_acknowledgeAssociation(assoc);
  if (cond.bad()) {
    spdlog::warn("pacs scp {}: acknowledging association failed: {}", ae_title, cond.text());
    return false;
  }
  return true;
}

// --- an accepted association: the DIMSE loop --------------------------------------------------

void StorageScp::Impl::handle_store(ScpAssociation& a, T_ASC_PresentationContextID pres,
                                    T_DIMSE_C_StoreRQ& req, bool& ok) {
  ReceivePlan plan = receive_dir(a.assoc, req);
  const bool staged = !plan.dir.empty() && plan.dir == staging_dir;
  if (a.slot->probation && !plan.dir.empty()) {
    // Only a C-STORE into a retrieval (its Move Originator names one of our C-MOVEs) may
    // take the slot of an idle association; the association ends after the answer.
    std::string why = "no slot: a C-STORE without a Move Originator of ours waits for none";
    if (!staged && promote(a, why)) {
      spdlog::debug("pacs scp {}: association from {} has a slot now", ae_title, a.where());
    } else {
      note_busy(a.calling_ae);
      warn_busy("C-STORE from " + a.where() + " refused, Storage SCP full: " + why);
      plan = ReceivePlan{"", "Storage SCP full: " + why, STATUS_STORE_Refused_OutOfResources};
      ok = false;
    }
  }
  if (staged && !a.routed_any && a.unrouted_bytes >= options.max_unrouted_bytes) {
    ++unrouted_aborted;
    ++refused;
    spdlog::warn(
        "pacs scp {}: association from {} aborted: it sent {} bytes of instances "
        "for studies nobody expects (limit {} bytes)",
        ae_title, a.where(), a.unrouted_bytes, options.max_unrouted_bytes);
    ok = false;  // aborted before reading this data set
    return;
  }
  const auto out =
      plan.dir.empty()
          ? detail::refuse_instance(a.assoc, pres, req, plan.status, plan.refusal, options.dimse_s)
          : detail::store_instance(a.assoc, pres, req, plan.dir, resolver(), options.dimse_s,
                                   options.fsync_each_file);
  if (a.slot->probation) return;  // refused above; closed now
  if (!out.network_ok) {
    spdlog::warn("pacs scp {}: receiving {} from {} failed: {}", ae_title, out.sop_uid, a.where(),
                 out.cond.text());
    ok = false;
    return;
  }
  if (out.status == 0) {
    ++received;
    ++a.stored;
    a.routed_any = true;
    a.slot->last_store_ms.store(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
            .count());
    return;
  }
  ++refused;
  if (plan.dir.empty()) ++refused_unread;
  if (staged) a.unrouted_bytes += out.bytes;
  // One line per association (an unwanted sender may send thousands); the rest at debug.
  const std::string what = "refused instance " + out.sop_uid +
                           (out.study_uid.empty() ? "" : " of study " + out.study_uid) + " from " +
                           a.where() + ": " + out.comment;
  if (++a.refused == 1) {
    spdlog::warn("pacs scp {}: {}", ae_title, what);
  } else {
    spdlog::debug("pacs scp {}: {}", ae_title, what);
  }
}

void StorageScp::Impl::serve(ScpAssociation& a) {
  if (!negotiate(a)) {
    ASC_dropAssociation(a.assoc);
    return;
  }
  T_ASC_Association* assoc = a.assoc;
  auto last_activity = Clock::now();
  bool ok = true;
  bool released = false;
  while (ok) {
    if (stopping.load()) break;  // connection closed below
    if (const std::string why = must_close(a); !why.empty()) {
      // Counted (evicted, probation_closed) and warned about where it was decided.
      spdlog::debug("pacs scp {}: association from {} closed: {}", ae_title, a.where(), why);
      break;
    }
    if (Clock::now() - last_activity > std::chrono::seconds(options.idle_s)) {
      ++idle_closed;
      spdlog::warn("pacs scp {}: association from {} idle for {} s, closed", ae_title, a.where(),
                   options.idle_s);
      break;
    }
    T_DIMSE_Message msg;
    std::memset(&msg, 0, sizeof(msg));
    T_ASC_PresentationContextID pres = 0;
    DcmDataset* detail = nullptr;
    const OFCondition cond =
        DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, 1, &pres, &msg, &detail);
    delete detail;
    if (cond == DIMSE_NODATAAVAILABLE) continue;
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      ASC_acknowledgeRelease(assoc);
      released = true;
      break;
    }
    if (cond == DUL_PEERABORTEDASSOCIATION) break;
    if (cond.bad()) {
      spdlog::warn("pacs scp {}: association from {}: {}", ae_title, a.where(), cond.text());
      break;
    }
    last_activity = Clock::now();
    switch (msg.CommandField) {
      case DIMSE_C_ECHO_RQ:
        ok = DIMSE_sendEchoResponse(assoc, pres, &msg.msg.CEchoRQ, STATUS_Success, nullptr).good();
        break;
      case DIMSE_C_STORE_RQ:
        handle_store(a, pres, msg.msg.CStoreRQ, ok);
        last_activity = Clock::now();
        break;
      default:
        spdlog::warn("pacs scp {}: unsupported DIMSE command {:#x} from {}, aborting", ae_title,
                     static_cast<unsigned>(msg.CommandField), a.where());
        ok = false;
        break;
    }
  }
  if (a.refused > 1)
    spdlog::warn("pacs scp {}: association from {}: {} instance(s) refused, {} stored", ae_title,
                 a.where(), a.refused, a.stored);
  if (released) {
    ASC_dropSCPAssociation(assoc, 5);  // let the peer close first after A-RELEASE-RP
  } else {
    ASC_dropAssociation(assoc);  // abort: close the connection (no 30 s A-ABORT wait)
  }
}

// --- StorageScp -------------------------------------------------------------------------------

StorageScp::StorageScp(std::string ae_title, std::uint16_t port, int max_associations,
                       ScpOptions options)
    : impl_(std::make_shared<Impl>()) {
  init_network();
  impl_->ae_title = std::move(ae_title);
  impl_->port = port;
  impl_->max_associations = std::max(1, max_associations);
  impl_->options = std::move(options);
  impl_->options.max_pending = std::max(1, impl_->options.max_pending);
  impl_->options.max_pending_per_peer = std::max(1, impl_->options.max_pending_per_peer);
  impl_->options.request_s = std::max(1, impl_->options.request_s);
  for (auto& ae : impl_->options.allowed_calling_aes) ae = text::trim(ae);
  impl_->staging_dir =
      impl_->options.sink ? impl_->options.sink->staging_dir()
      : impl_->options.staging_dir.empty()
          ? (std::filesystem::temp_directory_path() / ("p2x-scp-" + std::to_string(port))).string()
          : impl_->options.staging_dir;
}

StorageScp::~StorageScp() {
  try {
    stop();
  } catch (...) {
  }
}

void StorageScp::start() {
  if (impl_->running) return;
  impl_->open_listener();
  try {
    std::filesystem::create_directories(impl_->staging_dir);
  } catch (...) {
    impl_->close_listener();
    throw;
  }
  impl_->stopping = false;
  impl_->running = true;
  auto impl = impl_;
  impl_->accept_thread = std::thread([impl] {
    try {
      impl->accept_loop();
    } catch (const std::exception& e) {
      spdlog::error("pacs scp {}: accept loop ended: {}", impl->ae_title, e.what());
    }
  });
}

void StorageScp::Impl::close_listener() {
  if (listen_fd >= 0) ::close(listen_fd);
  listen_fd = -1;
  if (net != nullptr) ASC_dropNetwork(&net);
  net = nullptr;
}

void StorageScp::stop() {
  if (!impl_->running) return;
  impl_->stopping = true;
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  impl_->reap(true);
  impl_->close_listener();
  impl_->running = false;
}

std::uint16_t StorageScp::port() const {
  return impl_->port;
}
const std::string& StorageScp::ae_title() const {
  return impl_->ae_title;
}
std::uint64_t StorageScp::refused() const {
  return impl_->refused.load();
}
std::uint64_t StorageScp::received() const {
  return impl_->received.load();
}

ScpCounters StorageScp::counters() const {
  ScpCounters c;
  c.received = impl_->received.load();
  c.refused = impl_->refused.load();
  c.refused_unread = impl_->refused_unread.load();
  c.rejected_calling = impl_->rejected_calling.load();
  c.rejected_busy = impl_->rejected_busy.load();
  c.dropped = impl_->dropped.load();
  c.idle_closed = impl_->idle_closed.load();
  c.unrouted_aborted = impl_->unrouted_aborted.load();
  c.evicted = impl_->evicted.load();
  c.probation_closed = impl_->probation_closed.load();
  {
    std::lock_guard<std::mutex> lock(impl_->slots_mutex);
    c.open_associations = impl_->slots.size();
  }
  {
    std::lock_guard<std::mutex> lock(impl_->pending_mutex);
    c.waiting_connections = static_cast<std::uint64_t>(impl_->pending);
  }
  return c;
}

}  // namespace p2x::pacs
