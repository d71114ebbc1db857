// config/json_reader: strict JSON parsing and typed, path-aware access for the config module.
#include "config/json_reader.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include "text/text.hpp"

namespace p2x::config::detail {
namespace {

constexpr std::size_t kMaxDepth = 32;

// Tracks where the parser is, so a duplicate key can be reported with its full path.
class DuplicateKeyCheck {
 public:
  explicit DuplicateKeyCheck(const std::string& source) : source_(source) {}

  bool operator()(int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        frames_.push_back(Frame{false, 0, current_child_path(), {}, {}});
        break;
      case Json::parse_event_t::array_start:
        frames_.push_back(Frame{true, 0, current_child_path(), {}, {}});
        break;
      case Json::parse_event_t::key: {
        Frame& top = frames_.back();
        top.key = parsed.get<std::string>();
        if (!top.keys.insert(top.key).second) {
          throw ConfigError(source_ + ": " + join_path(top.path, text::abbreviate(top.key)) +
                            ": duplicate key");
        }
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        frames_.pop_back();
        element_done();
        break;
      case Json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  }

  // The JSON path of the value the parser is reading now ("" at the top).
  std::string current_path() const { return current_child_path(); }

 private:
  struct Frame {
    bool is_array;
    std::size_t index;
    std::string path;
    std::set<std::string> keys;
    std::string key;
  };

  std::string current_child_path() const {
    if (frames_.empty()) return {};
    const Frame& top = frames_.back();
    if (top.is_array) return top.path + "[" + std::to_string(top.index) + "]";
    return join_path(top.path, top.key);
  }

  void element_done() {
    if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
  }

  const std::string& source_;
  std::vector<Frame> frames_;
};

// nlohmann reports the byte offset of the last character read; turn it into line:column.
std::string line_column(std::string_view text, std::size_t byte) {
  std::size_t pos = byte == 0 ? 0 : std::min(byte - 1, text.size());
  std::size_t line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return std::to_string(line) + ":" + std::to_string(pos - line_start + 1);
}

// "[json.exception.parse_error.101] parse error at line 3, column 1: syntax error ..." ->
// "syntax error ...".
// Cut to 200 characters: the parser quotes the token it read, which may be megabytes long.
std::string parse_error_detail(const std::string& what) {
  constexpr std::size_t kMaxChars = 200;
  auto column = what.find("column ");
  if (column != std::string::npos) {
    auto colon = what.find(": ", column);
    if (colon != std::string::npos) return text::abbreviate(what.substr(colon + 2), kMaxChars);
  }
  auto bracket = what.find("] ");
  return text::abbreviate(bracket == std::string::npos ? what : what.substr(bracket + 2),
                          kMaxChars);
}

// Refuses text nested deeper than kMaxDepth before the parser sees it: the parser's stack and the
// per-level paths above grow with the depth (40,000 levels in an 80 KB file took 3 GB).
void check_depth(std::string_view text, const std::string& source) {
  std::size_t at = std::string_view::npos;
  if (text::json_nesting_depth(text, kMaxDepth, &at) > kMaxDepth) {
    throw ConfigError(source + ":" + line_column(text, at + 1) +
                      ": invalid JSON: objects and arrays nested more than " +
                      std::to_string(kMaxDepth) +
                      " levels deep (a pacs2xnat configuration needs at most 6)");
  }
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      const bool same = text::to_lower(a[i - 1]) == text::to_lower(b[j - 1]);
      row[j] = std::min({above + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string range_text(std::int64_t min, std::int64_t max) {
  if (max == std::numeric_limits<std::int64_t>::max()) return ">= " + std::to_string(min);
  return std::to_string(min) + ".." + std::to_string(max);
}

}  // namespace

Json parse_json(std::string_view text, const std::string& source) {
  check_depth(text, source);
  DuplicateKeyCheck check(source);
  try {
    return Json::parse(text.begin(), text.end(), std::ref(check));
  } catch (const Json::parse_error& e) {
    throw ConfigError(source + ":" + line_column(text, e.byte) +
                      ": invalid JSON: " + parse_error_detail(e.what()));
  } catch (const Json::out_of_range& e) {
    // A number beyond what a double holds (1e400): name the key the parser was reading.
    const std::string path = check.current_path();
    throw ConfigError(source + ": " + (path.empty() ? std::string() : path + ": ") +
                      "invalid JSON: " + parse_error_detail(e.what()));
  } catch (const Json::exception& e) {
    throw ConfigError(source + ": invalid JSON: " + parse_error_detail(e.what()));
  }
}

std::string closest_key(std::string_view key, const std::vector<std::string>& candidates) {
  std::size_t limit = key.size() <= 4 ? 1 : key.size() <= 8 ? 2 : 3;
  std::string best;
  std::size_t best_distance = limit + 1;
  for (const auto& candidate : candidates) {
    std::size_t d = edit_distance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

std::string describe(const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      return value.empty() ? "{}" : "an object";
    case Json::value_t::array:
      return value.empty() ? "[]" : "an array";
    default: {
      std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
      if (text.size() > 60) text = text.substr(0, 57) + "...";
      return text;
    }
  }
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

void Node::fail(const std::string& message) const {
  if (path_.empty()) throw ConfigError(*source_ + ": " + message);
  throw ConfigError(*source_ + ": " + path_ + ": " + message);
}

void Node::expected(const std::string& what) const {
  fail("expected " + what + ", got " + describe(*value_));
}

Node Node::child(const std::string& key) const {
  return Node((*value_)[key], join_path(path_, key), *source_);
}

Node Node::element(std::size_t index) const {
  return Node((*value_)[index], path_ + "[" + std::to_string(index) + "]", *source_);
}

std::string Node::as_string() const {
  if (!value_->is_string()) expected("a string");
  return value_->get<std::string>();
}

std::string Node::as_non_empty_string() const {
  if (!value_->is_string() || value_->get_ref<const std::string&>().empty()) {
    expected("a non-empty string");
  }
  return value_->get<std::string>();
}

std::int64_t Node::as_int(std::int64_t min, std::int64_t max) const {
  const std::string what = "an integer " + range_text(min, max);
  if (value_->is_number_unsigned()) {
    auto v = value_->get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(max)) expected(what);
    auto s = static_cast<std::int64_t>(v);
    if (s < min) expected(what);
    return s;
  }
  if (!value_->is_number_integer()) expected(what);
  auto v = value_->get<std::int64_t>();
  if (v < min || v > max) expected(what);
  return v;
}

bool Node::as_bool() const {
  if (!value_->is_boolean()) expected("true or false");
  return value_->get<bool>();
}

std::string Node::as_enum(std::initializer_list<const char*> allowed) const {
  std::string list;
  for (const char* a : allowed) {
    if (!list.empty()) list += ", ";
    list += "\"" + std::string(a) + "\"";
  }
  if (!value_->is_string()) expected("one of " + list);
  const auto& s = value_->get_ref<const std::string&>();
  for (const char* a : allowed) {
    if (s == a) return s;
  }
  expected("one of " + list);
}

std::vector<Node> Node::as_array(bool non_empty) const {
  if (!value_->is_array()) expected(non_empty ? "a non-empty array" : "an array");
  if (non_empty && value_->empty()) expected("a non-empty array");
  std::vector<Node> out;
  for (std::size_t i = 0; i < value_->size(); ++i) out.push_back(element(i));
  return out;
}

ObjectReader::ObjectReader(const Node& node, std::vector<std::string> known_keys) : node_(node) {
  if (!node.json().is_object()) node.expected("an object");
  for (const auto& item : node.json().items()) {
    if (std::find(known_keys.begin(), known_keys.end(), item.key()) != known_keys.end()) continue;
    Node bad(item.value(), join_path(node.path(), text::abbreviate(item.key())), node.source());
    std::string suggestion = closest_key(item.key(), known_keys);
    if (!suggestion.empty()) bad.fail("unknown key (did you mean " + suggestion + "?)");
    std::string list;
    for (const auto& k : known_keys) list += (list.empty() ? "" : ", ") + k;
    bad.fail("unknown key (known keys: " + list + ")");
  }
}

bool ObjectReader::has(const std::string& key) const {
  return node_.json().contains(key);
}

Node ObjectReader::required(const std::string& key) const {
  if (!has(key)) {
    Node missing(node_.json(), join_path(node_.path(), key), node_.source());
    missing.fail("missing required key");
  }
  return node_.child(key);
}

std::optional<Node> ObjectReader::optional(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return node_.child(key);
}

void ObjectReader::read_string(const std::string& key, std::string& out) const {
  if (auto n = optional(key)) out = n->as_string();
}

void ObjectReader::read_bool(const std::string& key, bool& out) const {
  if (auto n = optional(key)) out = n->as_bool();
}

}  // namespace p2x::config::detail
