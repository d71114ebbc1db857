// Our transport connections for DCMTK associations: prompt ACKs (see prompt_ack.hpp) and the
// nesting guard (dimse_guard.hpp) on every byte read.
#include "pacs/prompt_ack.hpp"

#include "pacs/connect.hpp"
#include "pacs/dimse_guard.hpp"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>

#include <dcmtk/dcmnet/dcmlayer.h>
#include <dcmtk/dcmnet/dcmtrans.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace p2x::pacs::detail {

namespace {

std::atomic<std::uint64_t> g_rearms{0};

// Asks the kernel to acknowledge what has arrived now and not to delay the next ACKs (until it
// decides the connection is interactive again, hence once per read).
void quick_ack(DcmNativeSocketType fd) {
#ifdef TCP_QUICKACK
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    g_rearms.fetch_add(1, std::memory_order_relaxed);
#else
    static_cast<void>(fd);
#endif
}

std::string peer_of(DcmNativeSocketType fd) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    char text[INET_ADDRSTRLEN] = "?";
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
        addr.sin_family == AF_INET)
        ::inet_ntop(AF_INET, &addr.sin_addr, text, sizeof text);
    return text;
}

// DCMTK's plain TCP connection whose reads first pass the nesting guard (a message nested too
// deep ends the connection: DCMTK sees it closed) and, with prompt ACKs on, re-arm
// TCP_QUICKACK after every read that got data.
class GuardedConnection : public DcmTCPConnection {
public:
    GuardedConnection(DcmNativeSocketType fd, bool prompt_ack)
        : DcmTCPConnection(fd), prompt_ack_(prompt_ack) {
        if (prompt_ack_) quick_ack(fd);
    }

    ssize_t read(void* buf, size_t nbyte) override {
        if (refused_) return 0;
        const ssize_t n = DcmTCPConnection::read(buf, nbyte);
        if (n <= 0) return n;
        if (prompt_ack_) quick_ack(getSocket());
        if (!guard_.on_read(static_cast<const unsigned char*>(buf), static_cast<std::size_t>(n))) {
            refused_ = true;
            spdlog::warn("dicom: connection with {} closed: {}", peer_of(getSocket()),
                         guard_.why());
            return 0;  // DCMTK: network closed; it never parses what came
        }
        return n;
    }

    ssize_t write(void* buf, size_t nbyte) override {
        const ssize_t n = DcmTCPConnection::write(buf, nbyte);
        if (n > 0) guard_.on_write(static_cast<const unsigned char*>(buf), static_cast<std::size_t>(n));
        return n;
    }

private:
    bool prompt_ack_;
    bool refused_ = false;
    DimseGuard guard_;
};

bool enabled_by_environment() {
    const char* v = std::getenv("P2X_PROMPT_ACK");
    return v == nullptr || std::strcmp(v, "0") != 0;
}

std::atomic<bool>& enabled_flag() {
    static std::atomic<bool> enabled{enabled_by_environment()};
    return enabled;
}

// DUL asks its network's transport layer for every connection it requests or accepts (also one
// adopted through dcmExternalSocketHandle); a requested one is swapped for the socket our own
// connect made (connect.hpp). No TLS: a secure connection is refused (null).
class PromptAckLayer : public DcmTransportLayer {
public:
    DcmTransportConnection* createConnection(DcmNativeSocketType fd,
                                              OFBool secure) override {
        if (secure) return nullptr;
        if (!adopt_handed_over(fd)) return nullptr;  // our own connect's socket (connect.hpp)
        return new GuardedConnection(fd, prompt_ack_enabled());
    }
};

}  // namespace

bool prompt_ack_enabled() {
#ifdef TCP_QUICKACK
    return enabled_flag().load(std::memory_order_relaxed);
#else
    return false;
#endif
}

void set_prompt_ack_enabled(bool enabled) { enabled_flag().store(enabled); }

void use_prompt_ack(T_ASC_Network* net) {
    if (net == nullptr) return;
    static PromptAckLayer layer;  // stateless; outlives every network (never destroyed early)
    ASC_setTransportLayer(net, &layer, 0);
}

std::uint64_t prompt_ack_rearms() { return g_rearms.load(std::memory_order_relaxed); }

}  // namespace p2x::pacs::detail
