// config/json_reader: internal helpers of the config module (not part of its public API).
//
// A Node is a JSON value plus the path it was found at ("pacs[1].timeouts"). Reading a node
// checks its type and range and throws ConfigError naming the source and that path. An
// ObjectReader checks an object's keys against the known set first, so a typo is reported with
// the closest known key instead of silently falling back to a default.
#pragma once

#include "config/config.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace p2x::config::detail {

using Json = nlohmann::json;

// Parses JSON text strictly: syntax errors carry line:column, duplicate keys are errors.
Json parse_json(std::string_view text, const std::string& source);

// Closest candidate within a small edit distance, or empty.
std::string closest_key(std::string_view key, const std::vector<std::string>& candidates);

// Short rendering of a JSON value for "got ..." in messages.
std::string describe(const Json& value);

class Node {
 public:
  Node(const Json& value, std::string path, const std::string& source)
      : value_(&value), path_(std::move(path)), source_(&source) {}

  const Json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& source() const { return *source_; }

  [[noreturn]] void fail(const std::string& message) const;
  // "expected <what>, got <value>"
  [[noreturn]] void expected(const std::string& what) const;

  Node child(const std::string& key) const;  // path.key; value must exist
  Node element(std::size_t index) const;     // path[index]

  std::string as_string() const;  // any string
  std::string as_non_empty_string() const;
  std::int64_t as_int(std::int64_t min, std::int64_t max) const;
  bool as_bool() const;
  std::string as_enum(std::initializer_list<const char*> allowed) const;
  std::vector<Node> as_array(bool non_empty) const;

 private:
  const Json* value_;
  std::string path_;
  const std::string* source_;
};

// Reads one JSON object: verifies it is an object and has no unknown keys.
class ObjectReader {
 public:
  ObjectReader(const Node& node, std::vector<std::string> known_keys);

  const Node& node() const { return node_; }
  bool has(const std::string& key) const;
  Node required(const std::string& key) const;  // "<path>.<key>: missing required key"
  std::optional<Node> optional(const std::string& key) const;

  // Convenience readers: leave `out` untouched when the key is absent.
  void read_string(const std::string& key, std::string& out) const;
  void read_bool(const std::string& key, bool& out) const;
  template <typename Int>
  void read_int(const std::string& key, Int& out, std::int64_t min, std::int64_t max) const {
    if (auto n = optional(key)) out = static_cast<Int>(n->as_int(min, max));
  }

 private:
  Node node_;
};

std::string join_path(const std::string& parent, const std::string& key);

}  // namespace p2x::config::detail
