// Loopback counting TCP proxy (see counting_proxy.hpp).
#include "counting_proxy.hpp"

#include <boost/asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <future>
#include <thread>
#include <vector>

namespace p2x::test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

struct Counters {
    std::mutex mu;
    int current = 0, max = 0, total = 0;
    void opened() {
        std::lock_guard<std::mutex> l(mu);
        ++current;
        ++total;
        if (current > max) max = current;
    }
    void closed() {
        std::lock_guard<std::mutex> l(mu);
        --current;
    }
};

// One proxied connection: two sockets, two relay directions; counted from accept until both
// directions have finished.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket client, std::uint16_t target, Counters& counters,
            const std::atomic<bool>& hold)
        : client_(std::move(client)), server_(client_.get_executor()), target_(target),
          counters_(counters), hold_(hold), hold_timer_(client_.get_executor()) {
        counters_.opened();
    }
    ~Session() { end_association(); }

    // An association ends when the client closes its side (after A-RELEASE or an abort): the
    // PACS may take a few more milliseconds to close its own socket (dcmqrscp's forked child
    // exits), which is not an association any more.
    void end_association() {
        if (ended_) return;
        ended_ = true;
        counters_.closed();
    }

    void start() {
        auto self = shared_from_this();
        server_.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), target_),
                              [self](const boost::system::error_code& ec) {
                                  if (ec) {
                                      self->close_all();
                                      return;
                                  }
                                  self->relay(self->client_, self->server_, self->up_);
                                  self->relay(self->server_, self->client_, self->down_);
                              });
    }

    void close_all() {
        boost::system::error_code ignored;
        client_.close(ignored);
        server_.close(ignored);
        hold_timer_.cancel();
    }

private:
    using Buffer = std::array<char, 64 * 1024>;

    void relay(tcp::socket& from, tcp::socket& to, Buffer& buf) {
        auto self = shared_from_this();
        from.async_read_some(asio::buffer(buf), [self, &from, &to, &buf](
                                                    const boost::system::error_code& ec, std::size_t n) {
            if (ec) {
                boost::system::error_code ignored;
                if (&from == &self->client_) self->end_association();
                if (ec == asio::error::eof) {
                    to.shutdown(tcp::socket::shutdown_send, ignored);  // pass the half-close on
                } else {
                    self->close_all();
                }
                return;
            }
            self->forward(from, to, buf, n);
        });
    }

    // Writes what was read on to the other side, after the hold when it is a response.
    void forward(tcp::socket& from, tcp::socket& to, Buffer& buf, std::size_t n) {
        auto self = shared_from_this();
        if (&to == &client_ && hold_.load()) {
            hold_timer_.expires_after(std::chrono::milliseconds(10));
            hold_timer_.async_wait([self, &from, &to, &buf, n](const boost::system::error_code& ec) {
                if (ec) return;
                self->forward(from, to, buf, n);
            });
            return;
        }
        asio::async_write(to, asio::buffer(buf.data(), n),
                          [self, &from, &to, &buf](const boost::system::error_code& wec, std::size_t) {
                              if (wec) {
                                  self->close_all();
                                  return;
                              }
                              self->relay(from, to, buf);
                          });
    }

    tcp::socket client_, server_;
    std::uint16_t target_;
    Counters& counters_;
    const std::atomic<bool>& hold_;
    asio::steady_timer hold_timer_;
    Buffer up_{}, down_{};
    bool ended_ = false;
};

}  // namespace

struct CountingProxy::Impl {
    asio::io_context ioc;
    tcp::acceptor acceptor{ioc};
    std::uint16_t target;
    std::uint16_t port = 0;
    Counters counters;
    std::atomic<bool> hold{false};
    std::vector<std::weak_ptr<Session>> sessions;  // io thread only
    std::thread thread;

    void accept() {
        acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket sock) {
            if (ec) return;  // acceptor closed
            boost::system::error_code ignored;
            sock.set_option(tcp::no_delay(true), ignored);
            auto s = std::make_shared<Session>(std::move(sock), target, counters, hold);
            sessions.erase(std::remove_if(sessions.begin(), sessions.end(),
                                          [](const auto& w) { return w.expired(); }),
                           sessions.end());
            sessions.push_back(s);
            s->start();
            accept();
        });
    }
};

CountingProxy::CountingProxy(std::uint16_t target_port) : impl_(std::make_unique<Impl>()) {
    impl_->target = target_port;
    const tcp::endpoint ep(asio::ip::address_v4::loopback(), 0);
    impl_->acceptor.open(ep.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(ep);
    impl_->acceptor.listen();
    impl_->port = impl_->acceptor.local_endpoint().port();
    impl_->accept();
    impl_->thread = std::thread([this] {
        try {
            impl_->ioc.run();
        } catch (...) {
            // a proxy failure shows up as failed connections in the test
        }
    });
}

CountingProxy::~CountingProxy() {
    asio::post(impl_->ioc, [this] {
        boost::system::error_code ignored;
        impl_->acceptor.close(ignored);
        for (auto& w : impl_->sessions)
            if (auto s = w.lock()) s->close_all();
    });
    // Sessions end once their handlers have run with operation_aborted.
    impl_->thread.join();
}

void CountingProxy::drop_all() {
    std::promise<void> done;
    asio::post(impl_->ioc, [this, &done] {
        for (auto& w : impl_->sessions)
            if (auto s = w.lock()) s->close_all();
        done.set_value();
    });
    done.get_future().wait();
}

std::uint16_t CountingProxy::port() const { return impl_->port; }

void CountingProxy::hold_responses(bool hold) { impl_->hold.store(hold); }

int CountingProxy::max_concurrent() const {
    std::lock_guard<std::mutex> l(impl_->counters.mu);
    return impl_->counters.max;
}

int CountingProxy::total_connections() const {
    std::lock_guard<std::mutex> l(impl_->counters.mu);
    return impl_->counters.total;
}

int CountingProxy::current() const {
    std::lock_guard<std::mutex> l(impl_->counters.mu);
    return impl_->counters.current;
}

void CountingProxy::reset_counts() {
    std::lock_guard<std::mutex> l(impl_->counters.mu);
    impl_->counters.max = impl_->counters.current;
    impl_->counters.total = 0;
}

bool CountingProxy::wait_current(int n, int timeout_ms) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (current() != n) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

}  // namespace p2x::test
