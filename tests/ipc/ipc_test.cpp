#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include "ipc/client.hpp"
#include "ipc/protocol.hpp"
#include "ipc/server.hpp"

using namespace p2x::ipc;

TEST_CASE("LineBuffer splits lines across arbitrary chunks", "[ipc]") {
  LineBuffer b(100);
  b.feed("{\"a\":1}\n{\"b\"");
  auto l1 = b.next();
  REQUIRE(l1);
  CHECK(*l1 == "{\"a\":1}");
  CHECK_FALSE(b.next());
  b.feed(":2}\r\n\n");
  CHECK(*b.next() == "{\"b\":2}");
  CHECK(*b.next() == "");
  CHECK_FALSE(b.next());
  CHECK_FALSE(b.overflowed());
}

TEST_CASE("LineBuffer overflows on a line over the limit", "[ipc]") {
  LineBuffer b(8);
  b.feed("12345");
  CHECK_FALSE(b.overflowed());
  b.feed("67890");
  CHECK(b.overflowed());
  CHECK_FALSE(b.next());
  LineBuffer c(8);
  c.feed("0123456789\nok\n");
  CHECK_FALSE(c.next());
  CHECK(c.overflowed());
}

TEST_CASE("byte arguments round-trip arbitrary bytes and refuse garbage", "[ipc]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n < 10; ++n) {
    const std::string part = all.substr(0, n);
    CHECK(bytes_argument(json{{"csv", bytes_value(part)}}, "csv") == part);
  }
  CHECK(bytes_argument(json{{"csv", bytes_value(all)}}, "csv") == all);
  CHECK(bytes_value("foobar") == "Zm9vYmFy");
  for (const char* bad : {"abc", "ab!d", "a=bc"}) {
    INFO(bad);
    try {
      bytes_argument(json{{"csv", bad}}, "csv");
      FAIL("accepted");
    } catch (const CommandError& e) {
      CHECK(e.code() == code::bad_request);
      CHECK(std::string(e.what()).find("\"csv\" is not base64") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(bytes_argument(json{{"csv", 3}}, "csv"), json::exception);
  CHECK_THROWS_AS(bytes_argument(json::object(), "csv"), json::exception);
}

TEST_CASE("Dispatcher turns every failure into an error envelope", "[ipc]") {
  Dispatcher d;
  d.add("echo", [](const json& a, const Peer&) { return a; });
  d.add("refuse",
        [](const json&, const Peer&) -> json { throw CommandError(code::refused, "no way"); });
  d.add("boom", [](const json&, const Peer&) -> json { throw std::runtime_error("kaput"); });
  Peer p;
  CHECK(d.dispatch(R"({"cmd":"echo","args":{"x":1}})", p) == make_ok(json{{"x", 1}}));
  CHECK(d.dispatch(R"({"cmd":"refuse"})", p)["error"]["code"] == "refused");
  CHECK(d.dispatch(R"({"cmd":"boom"})", p)["error"]["message"] == "boom failed: kaput");
  CHECK(d.dispatch(R"({"cmd":"nope"})", p)["error"]["code"] == "unknown_command");
  CHECK(d.dispatch("{", p)["error"]["code"] == "bad_request");
  CHECK(d.dispatch(R"({"cmd":"echo","args":3})", p)["error"]["code"] == "bad_request");
}

TEST_CASE("LineBuffer counts what it drops after an overflow until the line ends", "[ipc]") {
  LineBuffer b(8);
  b.feed("0123456789");
  REQUIRE(b.overflowed());
  CHECK_FALSE(b.overflow_ended());
  CHECK(b.dropped() == 10);
  b.feed("abcde");
  CHECK(b.dropped() == 15);
  b.feed("xy\n{\"cmd\":\"ping\"}\n");
  CHECK(b.overflow_ended());
  CHECK(b.dropped() == 17);
  b.feed("more");
  CHECK(b.dropped() == 17);
  CHECK_FALSE(b.next());

  LineBuffer c(8);
  c.feed("0123456789\nok\n");
  CHECK(c.overflowed());
  CHECK(c.overflow_ended());
  CHECK(c.dropped() == 10);
}

TEST_CASE("Dispatcher refuses numbers out of range and deep nesting without throwing", "[ipc]") {
  Dispatcher d;
  d.add(
      "echo", [](const json& a, const Peer&) { return a; }, Lane::Local);
  Peer p;
  for (const char* line :
       {R"({"cmd":"echo","x":1e400})", R"({"cmd":"echo","args":{"x":-1e999}})", R"([1e400])"}) {
    INFO(line);
    json e = d.dispatch(line, p);
    CHECK(e["ok"] == false);
    CHECK(e["error"]["code"] == "bad_request");
    CHECK_THAT(e["error"]["message"].get<std::string>(), Catch::Contains("number overflow"));
  }
  auto nested = [](std::size_t levels) {
    return R"({"cmd":"echo","args":{"x":)" + std::string(levels, '[') + std::string(levels, ']') +
           "}}";
  };
  CHECK(d.dispatch(nested(62), p)["ok"] == true);  // 64 levels with the envelope
  for (std::size_t levels : {63, 100000, 1000000}) {
    INFO(levels);
    json e = d.dispatch(nested(levels), p);
    CHECK(e["error"]["code"] == "bad_request");
    CHECK(e["error"]["message"] == "request nested deeper than 64 levels of objects and arrays");
  }
  // Brackets inside strings are text, not nesting.
  const std::string text_brackets =
      R"({"cmd":"echo","args":{"s":")" + std::string(5000, '[') + "\"}}";
  CHECK(d.dispatch(text_brackets, p)["ok"] == true);
  // A parser message quoting a long token is cut short.
  const std::string long_token = R"({"cmd":"echo","args":{"s":")" + std::string(100000, 'a');
  CHECK(d.dispatch(long_token, p)["error"]["message"].get<std::string>().size() < 600);
}

TEST_CASE("Dispatcher's parse says which lane a command runs on", "[ipc]") {
  Dispatcher d;
  d.add(
      "quick", [](const json&, const Peer&) { return json(1); }, Lane::Local);
  d.add("slow", [](const json&, const Peer&) { return json(2); });
  auto quick = d.parse(R"({"cmd":"quick"})");
  REQUIRE(std::holds_alternative<Request>(quick));
  CHECK(std::get<Request>(quick).lane == Lane::Local);
  CHECK(std::get<Request>(quick).args == json::object());
  auto slow = d.parse(R"({"cmd":"slow","args":{"a":1}})");
  REQUIRE(std::holds_alternative<Request>(slow));
  CHECK(std::get<Request>(slow).lane == Lane::Remote);
  CHECK(d.run(std::get<Request>(slow), Peer{}) == make_ok(2));
  auto unknown = d.parse(R"({"cmd":"nope"})");
  REQUIRE(std::holds_alternative<json>(unknown));
  CHECK(std::get<json>(unknown)["error"]["code"] == "unknown_command");
}

TEST_CASE("Server answers several requests per connection and reports the peer", "[ipc]") {
  std::string dir = std::filesystem::temp_directory_path() / "p2x-ipc-XXXXXX";
  REQUIRE(mkdtemp(dir.data()));
  std::string path = dir + "/s.sock";
  Dispatcher d;
  d.add("whoami", [](const json&, const Peer& p) { return json{{"uid", p.uid}, {"pid", p.pid}}; });
  {
    Server server(path, d, 1 << 20);
    for (int i = 0; i < 3; ++i) {
      json r = call(path, "whoami", json::object());
      CHECK(r["ok"] == true);
      CHECK(r["result"]["uid"] == getuid());
      CHECK(r["result"]["pid"] == getpid());
    }
    CHECK_THROWS_WITH(Server(path, d, 1 << 20), Catch::Contains("already listening"));
  }
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_THROWS_AS(call(path, "whoami", json::object()), Unreachable);
  std::filesystem::remove_all(dir);
}
