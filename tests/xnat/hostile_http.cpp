// HostileHttp (see hostile_http.hpp): a poll()ed listening socket, one thread per connection
// that reads requests with Beast's parser and answers or forwards them.
#include "hostile_http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <stdexcept>

namespace p2x::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::uint64_t kBodyLimit = std::uint64_t{1} << 30;  // study uploads pass through

}  // namespace

HostileHttp::HostileHttp(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("HostileHttp: socket failed");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("HostileHttp: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

HostileHttp::~HostileHttp() {
  stop();
}

void HostileHttp::stop() {
  if (stopping_.exchange(true)) return;
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::list<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);  // unblocks their reads
    threads.swap(connections_);
  }
  for (auto& t : threads) t.join();
}

int HostileHttp::requests(const std::string& prefix) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(
      seen_.begin(), seen_.end(), [&](const std::string& t) { return t.rfind(prefix, 0) == 0; }));
}

void HostileHttp::accept_loop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.push_back(fd);
    connections_.emplace_back([this, fd] { serve(fd); });
  }
}

void HostileHttp::serve(int fd) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  socket.assign(tcp::v4(), fd);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    beast::error_code ec;
    http::read(socket, buffer, parser, ec);
    if (ec) break;
    auto& req = parser.get();
    HttpExchange ex{std::string(req.method_string()), std::string(req.target()), req.body()};
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(ex.target);
    }
    std::optional<HttpAnswer> answer = handler_(ex);
    if (!answer) {
      std::vector<std::pair<std::string, std::string>> headers;
      for (const auto& f : req.base())
        headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      answer = forward(ex, headers);
    }
    http::response<http::string_body> res{static_cast<http::status>(answer->status), 11};
    res.set(http::field::content_type, answer->content_type);
    for (const auto& [k, v] : answer->headers) res.insert(k, v);
    res.body() = std::move(answer->body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    http::write(socket, res, ec);
    if (ec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
  socket.close(ignored);
}

std::optional<HttpAnswer> HostileHttp::forward(
    const HttpExchange& ex, const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::uint16_t up = upstream_.load();
  if (up == 0) return HttpAnswer{503, "text/plain", "no upstream", {}};
  try {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), up));
    http::request<http::string_body> req{http::string_to_verb(ex.method), ex.target, 11};
    for (const auto& [k, v] : headers) {
      if (beast::iequals(k, "Connection") || beast::iequals(k, "Content-Length") ||
          beast::iequals(k, "Transfer-Encoding"))
        continue;
      req.insert(k, v);
    }
    req.body() = ex.body;
    req.keep_alive(false);
    req.prepare_payload();
    http::write(s, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kBodyLimit);
    http::read(s, buffer, parser);
    auto& res = parser.get();
    HttpAnswer a;
    a.status = static_cast<int>(res.result_int());
    a.content_type = std::string(res[http::field::content_type]);
    for (const auto& f : res.base()) {
      if (beast::iequals(f.name_string(), "Set-Cookie") ||
          beast::iequals(f.name_string(), "Location"))
        a.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    a.body = std::move(res.body());
    return a;
  } catch (const std::exception& e) {
    return HttpAnswer{502, "text/plain", std::string("upstream: ") + e.what(), {}};
  }
}

std::string nested_declarations(int n) {
  std::string s;
  s.reserve(static_cast<std::size_t>(n) * 4);
  for (int i = 0; i < n; ++i) s += "<!a>";
  return s;
}

std::string nested_in_instruction(int n) {
  std::string s = "<?x>";
  s.reserve(static_cast<std::size_t>(n) * 3 + 6);
  for (int i = 0; i < n; ++i) s += "<a>";
  return s + "?>";
}

std::string nested_arrays(int n) {
  return std::string(static_cast<std::size_t>(n), '[') +
         std::string(static_cast<std::size_t>(n), ']');
}

}  // namespace p2x::test
