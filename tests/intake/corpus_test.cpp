// Runs parse_csv over every file of tests/data/csv/{good,bad} and checks its NAME.expect.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "intake/intake.hpp"

namespace fs = std::filesystem;
using p2x::intake::Problem;
using p2x::intake::Result;
using p2x::intake::Row;

namespace {

const fs::path kCorpus = fs::path(P2X_SOURCE_DIR) / "tests" / "data" / "csv";

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Non-empty, non-comment lines of an .expect file.
std::vector<std::string> expect_lines(const fs::path& csv) {
  fs::path e = csv;
  e.replace_extension(".expect");
  std::ifstream in(e);
  REQUIRE(in.good());
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    out.push_back(line);
  }
  return out;
}

std::vector<fs::path> csv_files(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(kCorpus / dir)) {
    if (entry.path().extension() == ".csv") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string field(const Row& r, const std::string& name) {
  if (name == "line") return std::to_string(r.line);
  if (name == "row") return std::to_string(r.row);
  if (name == "kind") return std::string(p2x::intake::to_string(r.kind));
  if (name == "accession") return r.accession;
  if (name == "patient_id") return r.patient_id;
  if (name == "study_date") return r.study_date;
  if (name == "study_uid") return r.study_uid;
  if (name == "modality") return r.modality;
  if (name == "subject") return r.subject;
  if (name == "session") return r.session;
  FAIL("unknown field in .expect: " << name);
  return {};
}

std::string dump(const Result& r) {
  std::string out;
  for (const auto& p : r.problems) out += "  " + p2x::intake::format(p) + "\n";
  return out;
}

}  // namespace

TEST_CASE("corpus: good CSV files parse into the expected rows", "[intake][corpus]") {
  const auto files = csv_files("good");
  REQUIRE(files.size() >= 6);
  for (const auto& file : files) {
    DYNAMIC_SECTION(file.filename().string()) {
      const Result result = p2x::intake::parse_csv(read_bytes(file));
      INFO("problems:\n" << dump(result));
      REQUIRE(result.ok());
      int checked = 0;
      for (const auto& line : expect_lines(file)) {
        INFO("expectation: " << line);
        const auto eq = line.find('=');
        REQUIRE(eq != std::string::npos);
        const std::string key = line.substr(0, eq);
        const std::string value = line.substr(eq + 1);
        if (key == "rows") {
          CHECK(result.rows.size() == std::stoul(value));
        } else if (key == "delimiter") {
          CHECK(std::string(1, result.delimiter) == (value == "tab" ? "\t" : value));
        } else {
          const auto dot = key.find('.');
          REQUIRE(dot != std::string::npos);
          const auto index = std::stoul(key.substr(0, dot));
          REQUIRE(index >= 1);
          REQUIRE(index <= result.rows.size());
          const Row& row = result.rows[index - 1];
          CHECK(row.row == static_cast<int>(index));
          CHECK(field(row, key.substr(dot + 1)) == value);
        }
        ++checked;
      }
      CHECK(checked >= 3);
    }
  }
}

TEST_CASE("corpus: bad CSV files report exactly the expected problems", "[intake][corpus]") {
  const auto files = csv_files("bad");
  REQUIRE(files.size() >= 22);
  for (const auto& file : files) {
    DYNAMIC_SECTION(file.filename().string()) {
      const Result result = p2x::intake::parse_csv(read_bytes(file));
      INFO("problems:\n" << dump(result));
      CHECK_FALSE(result.ok());
      CHECK(result.rows.empty());
      const auto lines = expect_lines(file);
      REQUIRE(!lines.empty());
      CHECK(result.problems.size() == lines.size());
      std::vector<bool> used(result.problems.size(), false);
      for (const auto& line : lines) {
        INFO("expectation: " << line);
        const auto c1 = line.find(':');
        const auto c2 = line.find(':', c1 + 1);
        REQUIRE(c2 != std::string::npos);
        const int want_line = std::stoi(line.substr(0, c1));
        const int want_column = std::stoi(line.substr(c1 + 1, c2 - c1 - 1));
        const std::string text = line.substr(c2 + 1);
        bool found = false;
        for (std::size_t i = 0; i < result.problems.size() && !found; ++i) {
          const Problem& p = result.problems[i];
          if (!used[i] && p.line == want_line && p.column == want_column &&
              p.message.find(text) != std::string::npos) {
            used[i] = true;
            found = true;
          }
        }
        CHECK(found);
      }
    }
  }
}
