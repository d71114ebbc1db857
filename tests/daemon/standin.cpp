#include "standin.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace p2x::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

HttpReply http_request(std::uint16_t port, const std::string& method, const std::string& target) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(30));
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  beast::error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  return {static_cast<int>(res.result_int()), res.body()};
}

XnatStandin::XnatStandin(const std::string& dir, const std::vector<std::string>& users,
                         const std::vector<std::string>& projects, bool https,
                         const std::vector<std::string>& extra_args)
    : dir_(dir), https_(https) {
  std::filesystem::create_directories(dir + "/data");
  std::string port_file = dir + "/port";
  std::filesystem::remove(port_file);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  };
  std::vector<std::string> argv{"/usr/bin/python3",
                                "-B",
                                std::string(P2X_SOURCE_DIR) + "/tests/xnat_standin/standin.py",
                                "--port",
                                "0",
                                "--data-dir",
                                dir + "/data",
                                "--users",
                                join(users),
                                "--projects",
                                join(projects),
                                "--port-file",
                                port_file};
  if (https) {
    argv.insert(argv.end(), {"--https", "--cert-dir", dir + "/certs"});
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::string log = dir + "/standin.log";
    FILE* f = freopen(log.c_str(), "a", stderr);
    (void)f;
    FILE* o = freopen(log.c_str(), "a", stdout);
    (void)o;
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file);
    int p = 0;
    if (in >> p && p > 0) {
      port_ = static_cast<std::uint16_t>(p);
      return;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("XNAT stand-in exited at start-up; see " + dir + "/standin.log");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("XNAT stand-in did not start within 30 s");
}

XnatStandin::~XnatStandin() {
  stop();
}

void XnatStandin::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string XnatStandin::url() const {
  return std::string(https_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

nlohmann::json XnatStandin::admin(const std::string& method, const std::string& target) const {
  if (https_) throw std::logic_error("admin() over https is not supported by the test harness");
  HttpReply r = http_request(port_, method, target);
  if (r.status != 200)
    throw std::runtime_error("stand-in " + target + ": HTTP " + std::to_string(r.status));
  return nlohmann::json::parse(r.body);
}

std::map<std::string, int> XnatStandin::uploads_per_session() const {
  std::map<std::string, int> out;
  auto j = admin("GET", "/_admin/uploads");
  for (auto& [k, v] : j.at("per_session").items()) out[k] = v.get<int>();
  return out;
}

}  // namespace p2x::test
