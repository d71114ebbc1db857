// Prompt-ACK transport connections for DCMTK associations (see prompt_ack.hpp).
#include "pacs/prompt_ack.hpp"

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

// DCMTK's plain TCP connection, re-arming TCP_QUICKACK after every read that got data.
class PromptAckConnection : public DcmTCPConnection {
public:
    explicit PromptAckConnection(DcmNativeSocketType fd) : DcmTCPConnection(fd) { quick_ack(fd); }

    ssize_t read(void* buf, size_t nbyte) override {
        const ssize_t n = DcmTCPConnection::read(buf, nbyte);
        if (n > 0) quick_ack(getSocket());
        return n;
    }
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
// adopted through dcmExternalSocketHandle). No TLS: a secure connection is refused (null).
class PromptAckLayer : public DcmTransportLayer {
public:
    DcmTransportConnection* createConnection(DcmNativeSocketType fd,
                                              OFBool secure) override {
        if (secure) return nullptr;
        if (!prompt_ack_enabled()) return new DcmTCPConnection(fd);
        return new PromptAckConnection(fd);
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
#ifdef TCP_QUICKACK
    if (net == nullptr) return;
    static PromptAckLayer layer;  // stateless; outlives every network (never destroyed early)
    ASC_setTransportLayer(net, &layer, 0);
#else
    static_cast<void>(net);
#endif
}

std::uint64_t prompt_ack_rearms() { return g_rearms.load(std::memory_order_relaxed); }

}  // namespace p2x::pacs::detail
