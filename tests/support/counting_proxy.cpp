// Loopback counting TCP proxy (see counting_proxy.hpp).
#include "counting_proxy.hpp"

#include <sys/prctl.h>

#include <boost/asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <mutex>
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

// Per-direction one-way delays in microseconds, read when a chunk arrives.
struct Delays {
  std::atomic<long long> up_us{0}, down_us{0};
};

// One proxied connection: two sockets, two relay directions; counted from accept until the
// client closes its side. Each direction reads into timestamped chunks and writes every chunk
// on once `delay` has passed since it was read, so latency is added without stalling reads.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket client, std::uint16_t target, Counters& counters,
          const std::atomic<bool>& hold, const Delays& delays)
      : client_(std::move(client)),
        server_(client_.get_executor()),
        target_(target),
        counters_(counters),
        hold_(hold),
        up_(client_, server_, delays.up_us, false),
        down_(server_, client_, delays.down_us, true) {
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
                            boost::system::error_code ignored;
                            self->server_.set_option(tcp::no_delay(true), ignored);
                            self->read(self->up_);
                            self->read(self->down_);
                          });
  }

  void close_all() {
    boost::system::error_code ignored;
    client_.close(ignored);
    server_.close(ignored);
    up_.timer.cancel();
    down_.timer.cancel();
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kChunk = 64 * 1024;
  static constexpr std::size_t kMaxQueued = 256;  // chunks per direction

  struct Chunk {
    Clock::time_point due;
    std::vector<char> data;
  };
  struct Pipe {
    Pipe(tcp::socket& f, tcp::socket& t, const std::atomic<long long>& d, bool response)
        : from(&f), to(&t), delay_us(&d), is_response(response), timer(f.get_executor()) {}
    tcp::socket* from;
    tcp::socket* to;
    const std::atomic<long long>* delay_us;
    bool is_response;  // target -> client: subject to hold_responses
    asio::steady_timer timer;
    std::deque<Chunk> queue;
    std::array<char, kChunk> buf{};  // each read lands here, then is copied into a chunk
    bool reading = false, busy = false, eof = false;
  };

  void read(Pipe& p) {
    if (p.reading || p.eof || p.queue.size() >= kMaxQueued) return;
    p.reading = true;
    auto self = shared_from_this();
    p.from->async_read_some(
        asio::buffer(p.buf), [self, &p](const boost::system::error_code& ec, std::size_t n) {
          p.reading = false;
          if (ec) {
            if (p.from == &self->client_) self->end_association();
            if (ec != asio::error::eof) {
              self->close_all();
              return;
            }
            p.eof = true;  // pass the half-close on once the queue is written
          } else {
            const auto delay = std::chrono::microseconds(p.delay_us->load());
            p.queue.push_back(
                {Clock::now() + delay, std::vector<char>(p.buf.begin(), p.buf.begin() + n)});
            self->read(p);
          }
          self->pump(p);
        });
  }

  // Writes the chunks whose time has come (all of them in one gathered write), or waits for
  // the first one's time (or for the hold to end); passes a half-close on once all is written.
  void pump(Pipe& p) {
    if (p.busy) return;
    auto self = shared_from_this();
    if (p.queue.empty()) {
      boost::system::error_code ignored;
      if (p.eof) p.to->shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    const auto now = Clock::now();
    const bool held = p.is_response && hold_.load();
    if (held || p.queue.front().due > now) {
      p.busy = true;
      p.timer.expires_at(held ? now + std::chrono::milliseconds(10) : p.queue.front().due);
      p.timer.async_wait([self, &p](const boost::system::error_code& ec) {
        p.busy = false;
        if (!ec) self->pump(p);
      });
      return;
    }
    std::vector<asio::const_buffer> out;
    for (const auto& c : p.queue) {
      if (c.due > now || out.size() == 64) break;
      out.push_back(asio::buffer(c.data));
    }
    p.busy = true;
    const std::size_t count = out.size();
    asio::async_write(
        *p.to, out, [self, &p, count](const boost::system::error_code& ec, std::size_t) {
          p.busy = false;
          if (ec) {
            self->close_all();
            return;
          }
          p.queue.erase(p.queue.begin(), p.queue.begin() + static_cast<std::ptrdiff_t>(count));
          self->read(p);
          self->pump(p);
        });
  }

  tcp::socket client_, server_;
  std::uint16_t target_;
  Counters& counters_;
  const std::atomic<bool>& hold_;
  Pipe up_, down_;
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
  Delays delays;
  std::vector<std::weak_ptr<Session>> sessions;  // io thread only
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket sock) {
      if (ec) return;  // acceptor closed
      boost::system::error_code ignored;
      sock.set_option(tcp::no_delay(true), ignored);
      auto s = std::make_shared<Session>(std::move(sock), target, counters, hold, delays);
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
    // No 50 us default timer slack on top of each delay (the timer's wake-up latency, ~40-80
    // us on this VM, remains: a 0.5 ms delay each way measured 1.1-1.3 ms per round trip).
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
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

std::uint16_t CountingProxy::port() const {
  return impl_->port;
}

void CountingProxy::hold_responses(bool hold) {
  impl_->hold.store(hold);
}

void CountingProxy::set_delay(std::chrono::microseconds up, std::chrono::microseconds down) {
  impl_->delays.up_us.store(up.count());
  impl_->delays.down_us.store(down.count());
}

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
