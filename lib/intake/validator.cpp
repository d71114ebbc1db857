// intake/validator: per-row rules and cross-row uniqueness checks.
#include "intake/validator.hpp"

#include <algorithm>

#include "text/text.hpp"

namespace p2x::intake::detail {

namespace {

constexpr std::size_t kAccessionMax = 16;  // DICOM SH
constexpr std::size_t kPatientIdMax = 64;  // DICOM LO

// FNV-1a, optionally case-folded; `sep` separates composite keys.
struct Hasher {
  std::uint64_t h = 14695981039346656037ULL;
  void add(std::string_view s, bool fold = false) {
    for (char c : s) {
      h ^= static_cast<unsigned char>(fold ? text::to_lower(c) : c);
      h *= 1099511628211ULL;
    }
    h ^= 0x1F;  // field separator
    h *= 1099511628211ULL;
  }
};

// Sorts entries by hash and calls on_repeat(first, later) for every later row whose value
// equals that of an earlier row (`same` confirms equality: hashes may collide).
template <typename Entry, typename Same, typename OnRepeat>
void for_each_repeat(std::vector<Entry>& v, Same same, OnRepeat on_repeat) {
  std::sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.index < b.index;
  });
  std::vector<std::uint32_t> firsts;  // distinct values within one hash group
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i + 1;
    while (j < v.size() && v[j].hash == v[i].hash) ++j;
    if (j - i > 1) {
      firsts.clear();
      for (std::size_t k = i; k < j; ++k) {
        bool repeated = false;
        for (const auto f : firsts) {
          if (same(f, v[k].index)) {
            on_repeat(f, v[k].index);
            repeated = true;
            break;
          }
        }
        if (!repeated) firsts.push_back(v[k].index);
      }
    }
    i = j;
  }
}

// A value as messages quote it: cut to text::kMessageValueChars, whatever its size.
std::string quote(std::string_view value) {
  return "'" + text::abbreviate(value) + "'";
}

}  // namespace

void Validator::reserve(std::size_t rows) {
  result_.rows.reserve(rows);
  meta_.reserve(rows);
}

std::string_view Validator::value(const CleanRecord& cells, Field f) const {
  const int c = column_of(f);
  return c < 0 ? std::string_view() : cells.cell(static_cast<std::size_t>(c));
}

Validator::Pos Validator::pos(const Record& rec, int col) const {
  Pos p;
  p.line = rec.line;
  if (col >= 0) {
    const auto c = static_cast<std::size_t>(col);
    if (c < rec.cells.size()) p.line = rec.cells[c].line;
    p.column = col + 1;
  }
  return p;
}

Problem Validator::problem_at(Pos at, std::string message) const {
  Problem p;
  p.line = at.line;
  p.column = at.column;
  if (at.column > 0 && static_cast<std::size_t>(at.column) <= result_.headers.size()) {
    p.column_name = result_.headers[static_cast<std::size_t>(at.column - 1)];
  }
  p.message = std::move(message);
  return p;
}

void Validator::add(Pos at, std::string message) {
  result_.problems.push_back(problem_at(at, std::move(message)));
}

void Validator::warn_formulas(const Record& rec, const CleanRecord& cells, int row_number) {
  for (const int column : columns_) {
    if (column < 0) continue;
    const std::string_view value = cells.cell(static_cast<std::size_t>(column));
    const char trigger = text::formula_trigger(value);
    if (trigger == '\0') continue;
    result_.warnings.push_back(problem_at(
        pos(rec, column),
        "row " + std::to_string(row_number) + ": " + quote(value) + " starts with '" +
            std::string(1, trigger) +
            "', so a spreadsheet would run it as a formula (CSV injection); make sure it is the "
            "real value (`pacs2xnat report` writes it as text, after a single quote)"));
  }
}

void Validator::row(const Record& rec, const CleanRecord& cells, int row_number) {
  Row row;
  Meta meta;
  row.line = rec.line;
  row.row = row_number;
  check_cell_count(rec, cells);
  warn_formulas(rec, cells, row_number);

  const Cells v{value(cells, Field::Accession), value(cells, Field::PatientId),
                value(cells, Field::StudyDate), value(cells, Field::StudyUid),
                value(cells, Field::Modality),  value(cells, Field::Subject),
                value(cells, Field::Session)};
  const ValueChecks checks = check_values(rec, v, row);
  const bool have_kind = choose_kind(rec, v, row, meta);
  bool keys_ok = checks.keys_ok;
  if (row.kind == RowKind::PatientDate) keys_ok = keys_ok && checks.date_ok && checks.modality_ok;
  meta.key_ok = have_kind && keys_ok;
  meta.patient = pos(rec, Field::PatientId);
  meta.session = pos(rec, Field::Session);
  row.accession = std::string(v.accession);
  row.patient_id = std::string(v.patient_id);
  row.study_uid = std::string(v.uid);
  label_row(rec, v, row, meta);

  result_.rows.push_back(std::move(row));
  meta_.push_back(meta);
}

void Validator::check_cell_count(const Record& rec, const CleanRecord& cells) {
  // Cells beyond the header usually mean an unquoted delimiter shifted the columns.
  for (std::size_t i = result_.headers.size(); i < cells.spans.size(); ++i) {
    if (!cells.cell(i).empty()) {
      add(pos(rec, static_cast<int>(i)),
          "this row has " + std::to_string(cells.spans.size()) + " cells but the header has " +
              std::to_string(result_.headers.size()) + "; quote values that contain the delimiter");
      break;
    }
  }
}

Validator::ValueChecks Validator::check_values(const Record& rec, const Cells& v, Row& row) {
  ValueChecks checks;
  // Adds the message of a failed check at the field's cell; true if the value is fine.
  const auto accept = [&](Field f, std::string message) {
    if (message.empty()) return true;
    add(pos(rec, f), std::move(message));
    return false;
  };
  if (!v.accession.empty()) {
    checks.keys_ok &=
        accept(Field::Accession, check_key(v.accession, "accession number", kAccessionMax));
  }
  if (!v.patient_id.empty()) {
    checks.keys_ok &=
        accept(Field::PatientId, check_key(v.patient_id, "patient ID", kPatientIdMax));
  }
  if (!v.date.empty()) {
    const auto msg = parse_date(v.date, row.study_date);
    checks.date_ok = accept(Field::StudyDate, msg.empty() ? msg : "study date " + msg);
  }
  if (!v.uid.empty()) checks.keys_ok &= accept(Field::StudyUid, check_uid(v.uid));
  if (!v.modality.empty()) {
    checks.modality_ok = accept(Field::Modality, check_modality(v.modality));
    if (checks.modality_ok) row.modality = text::to_upper(v.modality);
  }
  return checks;
}

bool Validator::choose_kind(const Record& rec, const Cells& v, Row& row, Meta& meta) {
  if (!v.uid.empty()) {
    row.kind = RowKind::StudyUid;
    meta.key = pos(rec, Field::StudyUid);
  } else if (!v.accession.empty()) {
    row.kind = RowKind::Accession;
    meta.key = pos(rec, Field::Accession);
  } else if (!v.patient_id.empty() && !v.date.empty()) {
    row.kind = RowKind::PatientDate;
    meta.key = pos(rec, Field::PatientId);
  } else if (!v.patient_id.empty()) {
    add(pos(rec, column_of(Field::StudyDate) >= 0 ? Field::StudyDate : Field::PatientId),
        "patient ID " + quote(v.patient_id) +
            " has no study date; add the Study Date (or an accession number or Study "
            "Instance UID)");
    return false;
  } else {
    add(pos(rec, -1),
        "row needs an accession number, or patient ID and study date, or a Study Instance UID");
    return false;
  }
  return true;
}

// Given labels must follow XNAT's rule; missing ones are generated (see intake.hpp).
void Validator::label_row(const Record& rec, const Cells& v, Row& row, Meta& meta) {
  if (!v.subject.empty()) {
    auto msg = check_label(v.subject, "subject label");
    if (!msg.empty()) add(pos(rec, Field::Subject), std::move(msg));
    row.subject = std::string(v.subject);
  } else if (!v.patient_id.empty()) {
    row.subject = text::sanitize_label(v.patient_id);
    meta.subject_generated = true;
  }
  if (!v.session.empty()) {
    auto msg = check_label(v.session, "session label");
    if (!msg.empty()) {
      add(pos(rec, Field::Session), std::move(msg));
    } else {
      meta.session_check = true;
    }
    row.session = std::string(v.session);
    return;
  }
  if (!meta.key_ok) return;
  if (row.kind == RowKind::Accession) {
    row.session = text::sanitize_label(v.accession);
  } else if (row.kind == RowKind::PatientDate) {
    row.session = (row.subject.empty() ? text::sanitize_label(v.patient_id) : row.subject) + "_" +
                  row.study_date;
  }
  meta.session_generated = !row.session.empty();
  if (!meta.session_generated) return;  // study-uid rows: labelled after C-FIND
  if (!text::is_valid_label(row.session)) {
    add(meta.session, "the generated session label " + quote(row.session) +
                          " is longer than 64 characters; give this row a Session label");
  } else {
    meta.session_check = true;
  }
}

void Validator::finish() {
  check_duplicates();
  check_sessions();
  check_subjects();
}

void Validator::check_duplicates() {
  const auto& rows = result_.rows;
  std::vector<Entry> entries;
  entries.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!meta_[i].key_ok) continue;
    const Row& r = rows[i];
    Hasher h;
    h.add(to_string(r.kind));
    switch (r.kind) {
      case RowKind::StudyUid:
        h.add(r.study_uid);
        break;
      case RowKind::Accession:
        h.add(r.accession);
        break;
      case RowKind::PatientDate:
        h.add(r.patient_id);
        h.add(r.study_date);
        h.add(r.modality);
        break;
    }
    entries.push_back({h.h, static_cast<std::uint32_t>(i)});
  }
  const auto same = [&](std::uint32_t a, std::uint32_t b) {
    const Row& x = rows[a];
    const Row& y = rows[b];
    if (x.kind != y.kind) return false;
    switch (x.kind) {
      case RowKind::StudyUid:
        return x.study_uid == y.study_uid;
      case RowKind::Accession:
        return x.accession == y.accession;
      case RowKind::PatientDate:
        return x.patient_id == y.patient_id && x.study_date == y.study_date &&
               x.modality == y.modality;
    }
    return false;
  };
  for_each_repeat(entries, same, [&](std::uint32_t first, std::uint32_t later) {
    const Row& r = rows[later];
    meta_[later].duplicate = true;
    std::string what;
    switch (r.kind) {
      case RowKind::StudyUid:
        what = "Study Instance UID " + quote(r.study_uid);
        break;
      case RowKind::Accession:
        what = "accession number " + quote(r.accession);
        break;
      case RowKind::PatientDate:
        what = "patient ID " + quote(r.patient_id) + ", study date " + r.study_date +
               (r.modality.empty() ? std::string() : ", modality " + r.modality);
        break;
    }
    add(meta_[later].key, "duplicate row: same study as line " + std::to_string(rows[first].line) +
                              " (" + what + "); remove one of them");
  });
}

void Validator::check_sessions() {
  // Labels are compared ignoring case: XNAT matches labels case-insensitively in places.
  const auto& rows = result_.rows;
  std::vector<Entry> entries;
  entries.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!meta_[i].session_check || meta_[i].duplicate) continue;
    Hasher h;
    h.add(rows[i].session, true);
    entries.push_back({h.h, static_cast<std::uint32_t>(i)});
  }
  std::vector<bool> reported(rows.size(), false);
  const auto same = [&](std::uint32_t a, std::uint32_t b) {
    return text::iequals(rows[a].session, rows[b].session);
  };
  for_each_repeat(entries, same, [&](std::uint32_t first, std::uint32_t later) {
    const std::string origin = meta_[later].session_generated ? " (generated)" : "";
    add(meta_[later].session,
        "session label " + quote(rows[later].session) + origin + " is already used on line " +
            std::to_string(rows[first].line) +
            " for a different study; every session needs its own label (labels differing "
            "only in case also clash)");
    if (!reported[first]) {
      reported[first] = true;
      add(meta_[first].session, "session label " + quote(rows[first].session) +
                                    " is used again on line " + std::to_string(rows[later].line) +
                                    " for a different study");
    }
  });
}

void Validator::check_subjects() {
  // Two different patient IDs must not be folded into one generated subject label.
  const auto& rows = result_.rows;
  std::vector<Entry> entries;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!meta_[i].subject_generated || rows[i].subject.empty()) continue;
    Hasher h;
    h.add(rows[i].subject, true);
    entries.push_back({h.h, static_cast<std::uint32_t>(i)});
  }
  const auto same = [&](std::uint32_t a, std::uint32_t b) {
    return text::iequals(rows[a].subject, rows[b].subject);
  };
  for_each_repeat(entries, same, [&](std::uint32_t first, std::uint32_t later) {
    if (rows[first].patient_id == rows[later].patient_id) return;
    add(meta_[later].patient,
        "patient ID " + quote(rows[later].patient_id) + " gives the subject label " +
            quote(rows[later].subject) + ", as does the different patient ID " +
            quote(rows[first].patient_id) + " on line " + std::to_string(rows[first].line) +
            "; give these rows a Subject label");
  });
}

}  // namespace p2x::intake::detail
