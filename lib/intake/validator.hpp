// intake/validator: turns cleaned data records into Rows and problems (private to lib/intake).
//
// Per row: key cells, date, UID, modality and label rules, the row kind, generated labels, and
// warnings for formula-like values (CSV injection).
// Across rows (in finish(), by sorting hashes, no per-row allocation): duplicate study keys,
// session labels used twice, different patient IDs folded into one generated subject label.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "intake/csv_reader.hpp"
#include "intake/fields.hpp"
#include "intake/intake.hpp"

namespace p2x::intake::detail {

// One record's cells after cleaning, back to back in one reusable buffer.
struct CleanRecord {
  std::string text;
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  bool bad_utf8 = false;

  std::string_view cell(std::size_t i) const {
    if (i >= spans.size()) return {};
    return std::string_view(text).substr(spans[i].first, spans[i].second - spans[i].first);
  }
  bool blank() const {
    for (const auto& s : spans) {
      if (s.second != s.first) return false;
    }
    return true;
  }
};

using Columns = std::array<int, kFieldCount>;  // 0-based column per Field, -1 if absent

class Validator {
 public:
  // Rows go to result.rows (all of them; the caller drops them if any problem is found).
  Validator(Result& result, const Columns& columns) : result_(result), columns_(columns) {}

  void reserve(std::size_t rows);
  void row(const Record& rec, const CleanRecord& cells, int row_number);
  // Cross-row checks; call once after the last row.
  void finish();

 private:
  struct Pos {
    int line = 0;
    int column = 0;  // 1-based, 0 = whole line
  };
  struct Meta {
    Pos key;              // cell naming the study key (for duplicate reports)
    Pos session;          // session cell, or the whole line for generated labels without a column
    Pos patient;          // patient ID cell
    bool key_ok = false;  // row has a valid kind and key values
    bool session_check = false;  // session label takes part in the uniqueness check
    bool session_generated = false;
    bool subject_generated = false;
    bool duplicate = false;
  };
  struct Entry {
    std::uint64_t hash;
    std::uint32_t index;
  };
  // A row's cells by field (empty when the column is absent).
  struct Cells {
    std::string_view accession, patient_id, date, uid, modality, subject, session;
  };
  struct ValueChecks {
    bool keys_ok = true;  // accession, patient ID and UID are usable C-FIND keys
    bool date_ok = true;
    bool modality_ok = true;
  };

  int column_of(Field f) const { return columns_[static_cast<std::size_t>(f)]; }
  std::string_view value(const CleanRecord& cells, Field f) const;
  Pos pos(const Record& rec, int col) const;
  Pos pos(const Record& rec, Field f) const { return pos(rec, column_of(f)); }
  Problem problem_at(Pos at, std::string message) const;
  void add(Pos at, std::string message);
  // Warns about every read cell that a spreadsheet would run as a formula (text::formula_trigger).
  void warn_formulas(const Record& rec, const CleanRecord& cells, int row_number);

  // The steps of row(): surplus cells, value rules, the row kind, labels.
  void check_cell_count(const Record& rec, const CleanRecord& cells);
  ValueChecks check_values(const Record& rec, const Cells& v, Row& row);
  bool choose_kind(const Record& rec, const Cells& v, Row& row, Meta& meta);
  void label_row(const Record& rec, const Cells& v, Row& row, Meta& meta);

  void check_duplicates();
  void check_sessions();
  void check_subjects();

  Result& result_;
  Columns columns_;
  std::vector<Meta> meta_;
};

}  // namespace p2x::intake::detail
