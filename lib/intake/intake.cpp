// intake: study-list CSV -> validated rows or a complete list of problems.
#include "intake/intake.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <unordered_map>
#include <utility>

#include "intake/csv_reader.hpp"
#include "intake/fields.hpp"
#include "intake/text.hpp"

namespace p2x::intake {

namespace {

using detail::Field;

constexpr std::size_t kMaxProblems = 1000;
constexpr std::size_t kAccessionMax = 16;  // DICOM SH
constexpr std::size_t kPatientIdMax = 64;  // DICOM LO

constexpr std::array<char, 3> kDelimiters{',', ';', '\t'};

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

std::string hex_byte(unsigned char b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("0x") + kHex[b >> 4] + kHex[b & 0xF];
}

// Cleans every cell; invalid UTF-8 is reported (once per cell) at its physical line.
void clean_record(const detail::Record& rec, CleanRecord& out, std::vector<Problem>* problems,
                  const std::vector<std::string>* headers) {
  out.text.clear();
  out.spans.clear();
  out.bad_utf8 = false;
  for (std::size_t i = 0; i < rec.cells.size(); ++i) {
    const auto& cell = rec.cells[i];
    const std::size_t begin = out.text.size();
    const std::string_view raw = rec.raw(cell);
    const auto info = detail::clean_append(raw, out.text);
    out.spans.emplace_back(begin, out.text.size());
    if (info.bad_utf8 != detail::CleanInfo::npos) {
      out.bad_utf8 = true;
      if (problems != nullptr) {
        Problem p;
        p.line = cell.line + detail::count_line_breaks(raw, info.bad_utf8);
        p.column = static_cast<int>(i) + 1;
        if (headers != nullptr && i < headers->size()) p.column_name = (*headers)[i];
        p.message = "invalid UTF-8 (byte " + hex_byte(info.bad_byte) +
                    "); save the file as 'CSV UTF-8' (in Excel: Save As > CSV UTF-8)";
        problems->push_back(std::move(p));
      }
    }
  }
}

// Number of cells of the first non-blank record that name a known column, and cell count.
std::pair<int, int> score_delimiter(std::string_view bytes, char delim) {
  detail::CsvReader reader(bytes, delim);
  detail::Record rec;
  CleanRecord clean;
  std::vector<detail::SyntaxError> ignored;
  while (reader.next(rec, ignored)) {
    clean_record(rec, clean, nullptr, nullptr);
    if (clean.blank()) continue;
    int known = 0;
    for (std::size_t i = 0; i < clean.spans.size(); ++i) {
      if (detail::match_header(clean.cell(i)) != Field::None) ++known;
    }
    return {known, static_cast<int>(rec.cells.size())};
  }
  return {0, 0};
}

char detect_delimiter(std::string_view bytes) {
  char best = ',';
  std::pair<int, int> best_score{0, 1};
  for (char d : kDelimiters) {
    const auto score = score_delimiter(bytes, d);
    if (score > best_score) {
      best = d;
      best_score = score;
    }
  }
  return best;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// Validates rows one by one and across rows (duplicates, label clashes).
class Validator {
 public:
  Validator(Result& result, std::vector<Problem>& problems, const std::array<int, 7>& columns)
      : result_(result), problems_(problems), columns_(columns) {}

  void reserve(std::size_t rows) {
    keys_.reserve(rows);
    sessions_.reserve(rows);
    subjects_.reserve(rows);
  }

  void row(const detail::Record& rec, const CleanRecord& cells, int row_number);

 private:
  struct SessionUse {
    int line;
    int column;
    std::string key;
    bool reported;
  };
  struct SubjectUse {
    int line;
    std::string patient_id;
  };

  int column_of(Field f) const { return columns_[static_cast<std::size_t>(f)]; }

  std::string_view value(const CleanRecord& cells, Field f) const {
    const int c = column_of(f);
    return c < 0 ? std::string_view() : cells.cell(static_cast<std::size_t>(c));
  }

  // Adds a problem for column index `col` (0-based, -1 = whole line) of `rec`.
  void add(const detail::Record& rec, int col, std::string message) {
    Problem p;
    p.line = rec.line;
    if (col >= 0) {
      const auto c = static_cast<std::size_t>(col);
      if (c < rec.cells.size()) p.line = rec.cells[c].line;
      p.column = col + 1;
      if (c < result_.headers.size()) p.column_name = result_.headers[c];
    }
    p.message = std::move(message);
    problems_.push_back(std::move(p));
    row_bad_ = true;
  }
  void add(const detail::Record& rec, Field f, std::string message) {
    add(rec, column_of(f), std::move(message));
  }

  Result& result_;
  std::vector<Problem>& problems_;
  std::array<int, 7> columns_;
  bool row_bad_ = false;
  std::unordered_map<std::string, int> keys_;               // study key -> line
  std::unordered_map<std::string, SessionUse> sessions_;    // lower-case label -> first use
  std::unordered_map<std::string, SubjectUse> subjects_;    // generated subject -> first use
};

void Validator::row(const detail::Record& rec, const CleanRecord& cells, int row_number) {
  row_bad_ = false;
  Row row;
  row.line = rec.line;
  row.row = row_number;

  // Cells beyond the header usually mean an unquoted delimiter shifted the columns.
  for (std::size_t i = result_.headers.size(); i < cells.spans.size(); ++i) {
    if (!cells.cell(i).empty()) {
      add(rec, static_cast<int>(i),
          "this row has " + std::to_string(cells.spans.size()) + " cells but the header has " +
              std::to_string(result_.headers.size()) +
              "; quote values that contain the delimiter");
      break;
    }
  }

  const auto accession = value(cells, Field::Accession);
  const auto patient_id = value(cells, Field::PatientId);
  const auto date = value(cells, Field::StudyDate);
  const auto uid = value(cells, Field::StudyUid);
  const auto modality = value(cells, Field::Modality);
  const auto subject = value(cells, Field::Subject);
  const auto session = value(cells, Field::Session);

  bool keys_ok = true;
  if (!accession.empty()) {
    auto msg = detail::check_key(accession, "accession number", kAccessionMax);
    if (!msg.empty()) {
      add(rec, Field::Accession, std::move(msg));
      keys_ok = false;
    }
  }
  if (!patient_id.empty()) {
    auto msg = detail::check_key(patient_id, "patient ID", kPatientIdMax);
    if (!msg.empty()) {
      add(rec, Field::PatientId, std::move(msg));
      keys_ok = false;
    }
  }
  bool date_ok = true;
  if (!date.empty()) {
    auto msg = detail::parse_date(date, row.study_date);
    if (!msg.empty()) {
      add(rec, Field::StudyDate, "study date " + msg);
      date_ok = false;
    }
  }
  if (!uid.empty()) {
    auto msg = detail::check_uid(uid);
    if (!msg.empty()) {
      add(rec, Field::StudyUid, std::move(msg));
      keys_ok = false;
    }
  }
  if (!modality.empty()) {
    auto msg = detail::check_modality(modality);
    if (!msg.empty()) {
      add(rec, Field::Modality, std::move(msg));
    } else {
      row.modality = ascii_upper(modality);
    }
  }

  // Which key identifies the study.
  bool have_kind = true;
  if (!uid.empty()) {
    row.kind = RowKind::StudyUid;
  } else if (!accession.empty()) {
    row.kind = RowKind::Accession;
  } else if (!patient_id.empty() && !date.empty()) {
    row.kind = RowKind::PatientDate;
    keys_ok = keys_ok && date_ok;
  } else if (!patient_id.empty()) {
    have_kind = false;
    add(rec, column_of(Field::StudyDate) >= 0 ? Field::StudyDate : Field::PatientId,
        "patient ID '" + std::string(patient_id) +
            "' has no study date; add the Study Date (or an accession number or Study "
            "Instance UID)");
  } else {
    have_kind = false;
    add(rec, -1,
        "row needs an accession number, or patient ID and study date, or a Study Instance UID");
  }
  row.accession = std::string(accession);
  row.patient_id = std::string(patient_id);
  row.study_uid = std::string(uid);

  // Labels: given ones must follow XNAT's rule; missing ones are generated (see intake.hpp).
  bool subject_generated = false;
  if (!subject.empty()) {
    auto msg = detail::check_label(subject, "subject label");
    if (!msg.empty()) add(rec, Field::Subject, std::move(msg));
    row.subject = std::string(subject);
  } else if (!patient_id.empty()) {
    row.subject = sanitize_label(patient_id);
    subject_generated = true;
  }
  bool session_generated = false;
  if (!session.empty()) {
    auto msg = detail::check_label(session, "session label");
    if (!msg.empty()) add(rec, Field::Session, std::move(msg));
    row.session = std::string(session);
  } else if (have_kind && keys_ok) {
    if (row.kind == RowKind::Accession) {
      row.session = sanitize_label(accession);
    } else if (row.kind == RowKind::PatientDate) {
      row.session = (row.subject.empty() ? sanitize_label(patient_id) : row.subject) + "_" +
                    row.study_date;
    }
    session_generated = !row.session.empty();
    if (session_generated && detail::utf8_length(row.session) > 64) {
      add(rec, Field::Session,
          "the generated session label '" + row.session +
              "' is longer than 64 characters; give this row a Session label");
    }
  }

  // Same study twice?
  bool duplicate = false;
  std::string key;
  if (have_kind && keys_ok) {
    switch (row.kind) {
      case RowKind::StudyUid:
        key = "U|" + row.study_uid;
        break;
      case RowKind::Accession:
        key = "A|" + row.accession;
        break;
      case RowKind::PatientDate:
        key = "P|" + row.patient_id + '\x1f' + row.study_date + '\x1f' + row.modality;
        break;
    }
    const auto [it, inserted] = keys_.emplace(key, rec.line);
    if (!inserted) {
      duplicate = true;
      std::string what;
      Field f = Field::None;
      switch (row.kind) {
        case RowKind::StudyUid:
          what = "Study Instance UID '" + row.study_uid + "'";
          f = Field::StudyUid;
          break;
        case RowKind::Accession:
          what = "accession number '" + row.accession + "'";
          f = Field::Accession;
          break;
        case RowKind::PatientDate:
          what = "patient ID '" + row.patient_id + "', study date " + row.study_date +
                 (row.modality.empty() ? std::string() : ", modality " + row.modality);
          f = Field::PatientId;
          break;
      }
      add(rec, f,
          "duplicate row: same study as line " + std::to_string(it->second) + " (" + what +
              "); remove one of them");
    }
  }

  // Session labels must be unique (XNAT compares them case-insensitively in places).
  if (!row.session.empty() && !duplicate && valid_label(row.session)) {
    const int col = column_of(Field::Session);
    const auto [it, inserted] =
        sessions_.emplace(ascii_lower(row.session), SessionUse{rec.line, col, key, false});
    if (!inserted && (key.empty() || it->second.key != key)) {
      const std::string origin = session_generated ? " (generated)" : "";
      add(rec, col,
          "session label '" + row.session + "'" + origin + " is already used on line " +
              std::to_string(it->second.line) +
              " for a different study; every session needs its own label (labels differing "
              "only in case also clash)");
      if (!it->second.reported) {
        it->second.reported = true;
        Problem p;
        p.line = it->second.line;
        p.column = it->second.column < 0 ? 0 : it->second.column + 1;
        if (it->second.column >= 0 &&
            static_cast<std::size_t>(it->second.column) < result_.headers.size()) {
          p.column_name = result_.headers[static_cast<std::size_t>(it->second.column)];
        }
        p.message = "session label '" + row.session + "' is used again on line " +
                    std::to_string(rec.line) + " for a different study";
        problems_.push_back(std::move(p));
      }
    }
  }

  // Two different patient IDs must not be folded into one generated subject label.
  if (subject_generated && !row.subject.empty()) {
    const auto [it, inserted] =
        subjects_.emplace(ascii_lower(row.subject), SubjectUse{rec.line, row.patient_id});
    if (!inserted && it->second.patient_id != row.patient_id) {
      add(rec, Field::PatientId,
          "patient ID '" + row.patient_id + "' gives the subject label '" + row.subject +
              "', as does the different patient ID '" + it->second.patient_id + "' on line " +
              std::to_string(it->second.line) + "; give these rows a Subject label");
    }
  }

  if (!row_bad_) result_.rows.push_back(std::move(row));
}

void add_file_problem(std::vector<Problem>& problems, std::string message) {
  Problem p;
  p.message = std::move(message);
  problems.push_back(std::move(p));
}

// Rejects inputs that are clearly not a UTF-8 text CSV. Returns true if it added a problem.
bool reject_non_csv(std::string_view bytes, std::vector<Problem>& problems) {
  if (bytes.size() >= 2 && ((bytes[0] == '\xFF' && bytes[1] == '\xFE') ||
                            (bytes[0] == '\xFE' && bytes[1] == '\xFF'))) {
    add_file_problem(problems,
                     "the file is UTF-16 encoded; save it as 'CSV UTF-8' (comma delimited)");
    return true;
  }
  if (bytes.size() >= 4 && bytes.substr(0, 4) == std::string_view("PK\x03\x04", 4)) {
    add_file_problem(problems,
                     "the file is a spreadsheet (zip/xlsx), not CSV; save it as 'CSV UTF-8'");
    return true;
  }
  const auto head = bytes.substr(0, 512);
  if (head.find('\0') != std::string_view::npos) {
    add_file_problem(problems,
                     "the file contains NUL bytes (UTF-16 or binary?); save it as 'CSV UTF-8'");
    return true;
  }
  return false;
}

void finish(std::vector<Problem>& problems) {
  std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  if (problems.size() > kMaxProblems) {
    const std::size_t more = problems.size() - kMaxProblems;
    problems.resize(kMaxProblems);
    Problem p;
    p.message = "... and " + std::to_string(more) + " more problems";
    problems.push_back(std::move(p));
  }
}

}  // namespace

std::string_view to_string(RowKind kind) {
  switch (kind) {
    case RowKind::Accession: return "accession";
    case RowKind::PatientDate: return "patient_date";
    case RowKind::StudyUid: return "study_uid";
  }
  return "unknown";
}

std::string format(const Problem& p) {
  std::string out;
  if (p.line <= 0) {
    out = "file";
  } else {
    out = "line " + std::to_string(p.line);
    if (p.column > 0) {
      out += ", column " + std::to_string(p.column);
      if (!p.column_name.empty()) out += " (" + p.column_name + ")";
    }
  }
  out += ": ";
  out += p.message;
  return out;
}

bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > 64) return false;
  for (char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string sanitize_label(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const char c = text[pos];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (ok) {
      out.push_back(c);
      ++pos;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = detail::decode_utf8(text, pos, cp);
    out.push_back('_');  // one '_' per character, not per byte
    pos += len == 0 ? 1 : len;
  }
  return out;
}

Result parse_csv(std::string_view bytes) {
  Result result;
  auto& problems = result.problems;
  if (reject_non_csv(bytes, problems)) return result;
  if (bytes.size() >= 3 && bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);

  result.delimiter = detect_delimiter(bytes);
  detail::CsvReader reader(bytes, result.delimiter);
  detail::Record rec;
  CleanRecord cells;
  std::vector<detail::SyntaxError> syntax;

  // Header: the first non-blank record.
  bool have_header = false;
  int header_line = 0;
  while (reader.next(rec, syntax)) {
    clean_record(rec, cells, &problems, nullptr);
    if (cells.blank() && !cells.bad_utf8) continue;
    have_header = true;
    header_line = rec.line;
    break;
  }
  for (const auto& e : syntax) problems.push_back({e.line, e.column, {}, e.message});
  syntax.clear();
  if (!have_header) {
    add_file_problem(problems, "the file is empty; " + detail::accepted_headings());
    finish(problems);
    return result;
  }
  result.headers.reserve(cells.spans.size());
  for (std::size_t i = 0; i < cells.spans.size(); ++i) {
    result.headers.emplace_back(cells.cell(i));
  }

  std::array<int, 7> columns;
  columns.fill(-1);
  for (std::size_t i = 0; i < result.headers.size(); ++i) {
    const Field f = detail::match_header(result.headers[i]);
    if (f == Field::None) continue;  // unknown columns are ignored
    int& slot = columns[static_cast<std::size_t>(f)];
    if (slot >= 0) {
      Problem p;
      p.line = rec.cells[i].line;
      p.column = static_cast<int>(i) + 1;
      p.column_name = result.headers[i];
      p.message = "column '" + result.headers[i] + "' means " +
                  std::string(detail::field_title(f)) + ", as does column " +
                  std::to_string(slot + 1) + " ('" +
                  result.headers[static_cast<std::size_t>(slot)] + "'); keep only one of them";
      problems.push_back(std::move(p));
      continue;
    }
    slot = static_cast<int>(i);
  }
  const auto has = [&](Field f) { return columns[static_cast<std::size_t>(f)] >= 0; };
  if (!has(Field::Accession) && !has(Field::StudyUid) &&
      !(has(Field::PatientId) && has(Field::StudyDate))) {
    std::string found;
    for (const auto& h : result.headers) {
      if (h.empty()) continue;
      if (!found.empty()) found += ", ";
      found += "'" + h + "'";
    }
    std::string why = has(Field::PatientId)
                          ? "the header has a Patient ID column but no Study Date column"
                          : "no accession number, Study Instance UID or patient ID column found";
    add_file_problem(problems, why + " (header on line " + std::to_string(header_line) +
                                   (found.empty() ? std::string() : ": " + found) + "); " +
                                   detail::accepted_headings());
    finish(problems);
    return result;
  }

  Validator validator(result, problems, columns);
  validator.reserve(bytes.size() / 16 + 16);
  int row_number = 0;
  while (reader.next(rec, syntax)) {
    for (const auto& e : syntax) {
      Problem p{e.line, e.column, {}, e.message};
      if (e.column > 0 && static_cast<std::size_t>(e.column) <= result.headers.size()) {
        p.column_name = result.headers[static_cast<std::size_t>(e.column - 1)];
      }
      problems.push_back(std::move(p));
    }
    const bool syntax_bad = !syntax.empty();
    syntax.clear();
    clean_record(rec, cells, &problems, &result.headers);
    if (cells.blank() && !cells.bad_utf8 && !syntax_bad) continue;  // blank lines: skipped
    ++row_number;
    if (cells.blank()) continue;  // only junk, already reported
    validator.row(rec, cells, row_number);
  }
  if (row_number == 0) {
    add_file_problem(problems, "the file has a header (line " + std::to_string(header_line) +
                                   ") but no data rows");
  }
  if (!problems.empty()) result.rows.clear();
  finish(problems);
  return result;
}

}  // namespace p2x::intake
