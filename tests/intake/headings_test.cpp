// Header aliases: the alias table, the accepted-headings text made from it, and README.md's CSV
// table must all name the same headings.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "intake/fields.hpp"
#include "intake/text.hpp"

using p2x::intake::detail::accepted_headings;
using p2x::intake::detail::Field;
using p2x::intake::detail::field_title;
using p2x::intake::detail::fold_header;
using p2x::intake::detail::header_aliases;
using p2x::intake::detail::kFieldCount;
using p2x::intake::detail::match_header;

namespace {

std::vector<Field> all_fields() {
  std::vector<Field> out;
  for (int i = 0; i < kFieldCount; ++i) out.push_back(static_cast<Field>(i));
  return out;
}

// True if `item` stands in `text` as a whole list item: between quotes, after "(or " or ", ",
// and before "'", ", " or ")".
bool lists_item(const std::string& text, const std::string& item) {
  for (auto at = text.find(item); at != std::string::npos; at = text.find(item, at + 1)) {
    const std::string before = text.substr(0, at);
    const std::string after = text.substr(at + item.size());
    const bool starts = (!before.empty() && before.back() == '\'') ||
                        (before.size() >= 4 && before.substr(before.size() - 4) == "(or ") ||
                        (before.size() >= 2 && before.substr(before.size() - 2) == ", ");
    const bool ends =
        after.rfind("'", 0) == 0 || after.rfind(", ", 0) == 0 || after.rfind(")", 0) == 0;
    if (starts && ends) return true;
  }
  return false;
}

std::vector<std::string> split_list(const std::string& cell) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < cell.size()) {
    auto comma = cell.find(',', start);
    if (comma == std::string::npos) comma = cell.size();
    std::string item = cell.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("every alias is accepted and named in the accepted-headings text", "[intake][headings]") {
  const std::string text = accepted_headings();
  for (const Field field : all_fields()) {
    const auto aliases = header_aliases(field);
    REQUIRE_FALSE(aliases.empty());
    CHECK(aliases.front() == field_title(field));
    CHECK(text.find("'" + std::string(field_title(field)) + "'") != std::string::npos);
    for (const auto alias : aliases) {
      INFO(alias);
      CHECK(match_header(alias) == field);
      CHECK(lists_item(text, std::string(alias)));
    }
  }
  CHECK(header_aliases(Field::None).empty());
}

TEST_CASE("no two aliases fold to the same heading", "[intake][headings]") {
  std::set<std::string> folded;
  for (const Field field : all_fields()) {
    for (const auto alias : header_aliases(field)) {
      INFO(alias);
      CHECK(folded.insert(fold_header(alias)).second);
    }
  }
}

TEST_CASE("every heading the accepted-headings text lists is accepted", "[intake][headings]") {
  const std::string text = accepted_headings();
  std::vector<std::string> listed;
  for (auto open = text.find("(or "); open != std::string::npos;
       open = text.find("(or ", open + 1)) {
    const auto close = text.find(')', open);
    REQUIRE(close != std::string::npos);
    for (auto& item : split_list(text.substr(open + 4, close - open - 4))) listed.push_back(item);
  }
  for (auto q = text.find('\''); q != std::string::npos; q = text.find('\'', q + 1)) {
    const auto end = text.find('\'', q + 1);
    REQUIRE(end != std::string::npos);
    listed.push_back(text.substr(q + 1, end - q - 1));
    q = end;
  }
  std::size_t aliases = 0;
  for (const Field field : all_fields()) aliases += header_aliases(field).size();
  CHECK(listed.size() == aliases);
  for (const auto& item : listed) {
    INFO(item);
    CHECK(match_header(item) != Field::None);
  }
}

TEST_CASE("README's CSV table lists exactly the alias table", "[intake][headings]") {
  std::ifstream readme(std::string(P2X_SOURCE_DIR) + "/README.md");
  REQUIRE(readme.good());
  std::string line;
  bool in_csv_section = false;
  std::set<Field> seen;
  while (std::getline(readme, line)) {
    if (line.rfind("#", 0) == 0) in_csv_section = line == "### The CSV";
    if (!in_csv_section || line.rfind("| ", 0) != 0) continue;
    if (line.rfind("| column", 0) == 0 || line.rfind("| ---", 0) == 0) continue;
    const auto bar2 = line.find('|', 1);
    const auto bar3 = line.find('|', bar2 + 1);
    REQUIRE(bar3 != std::string::npos);
    const auto title = split_list(line.substr(1, bar2 - 1));
    REQUIRE(title.size() == 1);
    INFO(line);
    const Field field = match_header(title[0]);
    REQUIRE(field != Field::None);
    CHECK(title[0] == field_title(field));
    std::vector<std::string> want;
    for (const auto alias : header_aliases(field)) want.emplace_back(alias);
    want.erase(want.begin());  // the column name itself
    CHECK(split_list(line.substr(bar2 + 1, bar3 - bar2 - 1)) == want);
    seen.insert(field);
  }
  CHECK(seen.size() == static_cast<std::size_t>(kFieldCount));
}
