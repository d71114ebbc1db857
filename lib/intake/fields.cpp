// intake/fields: header aliases and value checks.
#include "intake/fields.hpp"

#include <array>
#include <cstddef>

#include "intake/text.hpp"
#include "text/text.hpp"

namespace p2x::intake::detail {

namespace {

struct Alias {
  Field field;
  std::string_view heading;  // as a person writes it; matched in its fold_header() form
};

// Every heading a column is known by; the first of each field is its canonical heading (as in
// XNAT's DQR batch CSV). Headings are compared folded, so "AccessionNumber", "accession_number"
// and "ACCESSION NUMBER" need no entry of their own. README.md's CSV table lists the same.
constexpr std::array<Alias, 26> kAliases{{
    {Field::Accession, "Accession Number"},
    {Field::Accession, "Accession"},
    {Field::Accession, "ACC"},
    {Field::Accession, "Accession No"},
    {Field::Accession, "Acc No"},
    {Field::Accession, "Accession Nr"},
    {Field::Accession, "Acc Number"},
    {Field::PatientId, "Patient ID"},
    {Field::PatientId, "PID"},
    {Field::PatientId, "MRN"},
    {Field::StudyDate, "Study Date"},
    {Field::StudyDate, "Date"},
    {Field::StudyUid, "Study Instance UID"},
    {Field::StudyUid, "Study UID"},
    {Field::Modality, "Modality"},
    {Field::Subject, "Subject"},
    {Field::Subject, "Subject Label"},
    {Field::Subject, "XNAT Subject"},
    {Field::Subject, "XNAT Subject Label"},
    {Field::Session, "Session"},
    {Field::Session, "Session Label"},
    {Field::Session, "Experiment"},
    {Field::Session, "Experiment Label"},
    {Field::Session, "XNAT Session"},
    {Field::Session, "XNAT Session Label"},
    {Field::Session, "XNAT Experiment"},
}};

// "'Accession Number' (or Accession, ACC, ...)": a field's headings as accepted_headings()
// lists them.
std::string headings_of(Field field) {
  const auto headings = header_aliases(field);
  std::string out = "'" + std::string(headings.front()) + "'";
  for (std::size_t i = 1; i < headings.size(); ++i) {
    out += i == 1 ? " (or " : ", ";
    out += headings[i];
  }
  if (headings.size() > 1) out += ")";
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return true;
}

int to_int(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

bool leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return (m == 2 && leap(y)) ? 29 : kDays[m - 1];
}

constexpr std::string_view kMonthNames[] = {"January",   "February", "March",    "April",
                                            "May",       "June",     "July",     "August",
                                            "September", "October",  "November", "December"};

constexpr std::string_view kFormats = "use YYYYMMDD, YYYY-MM-DD or DD/MM/YYYY";

// A value as messages quote it: cut to text::kMessageValueChars, whatever its size.
std::string quoted(std::string_view s) {
  return "'" + text::abbreviate(s) + "'";
}

// A time after the date: H:MM, HH:MM, HH:MM:SS, HH:MM:SS.fff.
bool valid_time(std::string_view t) {
  const auto colon = t.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 2) return false;
  const auto h = t.substr(0, colon);
  if (!all_digits(h) || to_int(h) > 23) return false;
  t.remove_prefix(colon + 1);
  if (t.size() < 2 || !all_digits(t.substr(0, 2)) || to_int(t.substr(0, 2)) > 59) return false;
  t.remove_prefix(2);
  if (t.empty()) return true;
  if (t[0] != ':' || t.size() < 3 || !all_digits(t.substr(1, 2)) || to_int(t.substr(1, 2)) > 60)
    return false;
  t.remove_prefix(3);
  if (t.empty()) return true;
  return t[0] == '.' && all_digits(t.substr(1));
}

std::string check_ymd(std::string_view text, int y, int m, int d, bool day_first,
                      std::string& out) {
  if (y < 1900 || y > 2100) {
    return quoted(text) + " has the year " + std::to_string(y) +
           ", which cannot be a study date (expected 1900-2100)";
  }
  const std::string_view hint = day_first ? "; dates with '/', '.' or '-' after the day are read "
                                            "as DD/MM/YYYY"
                                          : "";
  if (m < 1 || m > 12) {
    return quoted(text) + " is not a real calendar date (there is no month " + std::to_string(m) +
           ")" + std::string(hint);
  }
  if (d < 1 || d > days_in_month(y, m)) {
    return quoted(text) + " is not a real calendar date (" + std::string(kMonthNames[m - 1]) + " " +
           std::to_string(y) + " has " + std::to_string(days_in_month(y, m)) + " days)" +
           std::string(hint);
  }
  out.resize(8);
  const int parts[] = {y / 1000 % 10, y / 100 % 10, y / 10 % 10, y % 10,
                       m / 10,        m % 10,       d / 10,      d % 10};
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>('0' + parts[i]);
  return {};
}

// "1.23457E+11": a long number that Excel displayed (and exported) in scientific notation.
bool excel_scientific(std::string_view v) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < v.size() && is_digit(v[i])) ++i;
    return i > start;
  };
  if (!digits()) return false;
  if (i < v.size() && (v[i] == '.' || v[i] == ',')) {
    ++i;
    if (!digits()) return false;
  }
  if (i >= v.size() || (v[i] != 'E' && v[i] != 'e')) return false;
  ++i;
  if (i >= v.size() || v[i] != '+') return false;  // Excel always writes "E+"
  ++i;
  return digits() && i == v.size();
}

}  // namespace

Field match_header(std::string_view header) {
  const std::string folded = fold_header(header);
  if (folded.empty()) return Field::None;
  for (const auto& a : kAliases) {
    if (fold_header(a.heading) == folded) return a.field;
  }
  return Field::None;
}

std::vector<std::string_view> header_aliases(Field field) {
  std::vector<std::string_view> out;
  for (const auto& a : kAliases) {
    if (a.field == field) out.push_back(a.heading);
  }
  return out;
}

std::string_view field_title(Field field) {
  for (const auto& a : kAliases) {
    if (a.field == field) return a.heading;
  }
  return "";
}

std::string accepted_headings() {
  return "a study list needs a header line with " + headings_of(Field::Accession) + ", or " +
         headings_of(Field::StudyUid) + ", or " + headings_of(Field::PatientId) +
         " together with " + headings_of(Field::StudyDate) +
         "; optional: " + headings_of(Field::Modality) + ", " + headings_of(Field::Subject) + ", " +
         headings_of(Field::Session) + " (case, spaces and punctuation do not matter)";
}

std::string parse_date(std::string_view text, std::string& out) {
  std::string_view date = text;
  // Optional time part: "2024-03-05 00:00:00", "2024-03-05T10:00".
  auto cut = date.find(' ');
  if (cut == std::string_view::npos && date.size() > 10 && date[10] == 'T') cut = 10;
  if (cut != std::string_view::npos) {
    std::string_view time = date.substr(cut + 1);
    while (!time.empty() && time.front() == ' ') time.remove_prefix(1);
    if (!valid_time(time)) {
      return quoted(text) + " is not a date in a known format; " + std::string(kFormats);
    }
    date = date.substr(0, cut);
  }

  if (date.size() == 8 && all_digits(date)) {
    return check_ymd(text, to_int(date.substr(0, 4)), to_int(date.substr(4, 2)),
                     to_int(date.substr(6, 2)), false, out);
  }
  // Three numeric parts separated by one kind of separator.
  char sep = 0;
  for (char c : date) {
    if (c == '-' || c == '/' || c == '.') {
      sep = c;
      break;
    }
  }
  if (sep != 0) {
    const auto a = date.find(sep);
    const auto b = date.find(sep, a + 1);
    if (b != std::string_view::npos && date.find(sep, b + 1) == std::string_view::npos) {
      const auto p1 = date.substr(0, a);
      const auto p2 = date.substr(a + 1, b - a - 1);
      const auto p3 = date.substr(b + 1);
      if (all_digits(p1) && all_digits(p2) && all_digits(p3) && p2.size() <= 2) {
        if (p1.size() == 4 && p3.size() <= 2) {
          return check_ymd(text, to_int(p1), to_int(p2), to_int(p3), false, out);
        }
        if (p1.size() <= 2 && p3.size() == 4) {
          return check_ymd(text, to_int(p3), to_int(p2), to_int(p1), true, out);
        }
        if (p1.size() <= 2 && p3.size() == 2) {
          return quoted(text) + " has a two-digit year; write the year in full (" +
                 std::string(kFormats) + ")";
        }
      }
    }
  }
  return quoted(text) + " is not a date in a known format; " + std::string(kFormats);
}

std::string check_uid(std::string_view uid) {
  const std::string what = "Study Instance UID " + quoted(uid);
  switch (text::uid_fault(uid)) {
    case text::UidFault::None:
      return {};
    case text::UidFault::Empty:
      return "Study Instance UID is empty";
    case text::UidFault::BadCharacter: {
      const char c = uid[uid.find_first_not_of("0123456789.")];
      return what + " contains " + quoted(std::string(1, c)) + "; a UID has only digits and dots";
    }
    case text::UidFault::TooLong:
      return what + " is " + std::to_string(uid.size()) + " characters long; a UID has at most " +
             std::to_string(text::kMaxUidLength);
    case text::UidFault::EmptyComponent:
      return what + " has an empty component (a leading, trailing or doubled '.')";
  }
  return what + " is not a UID";
}

std::string check_modality(std::string_view modality) {
  std::size_t start = 0;
  for (;;) {
    const auto bs = modality.find('\\', start);
    const auto part =
        modality.substr(start, bs == std::string_view::npos ? modality.npos : bs - start);
    if (part.empty() || part.size() > 16) {
      return "modality " + quoted(modality) +
             " is not a DICOM modality (1-16 letters or digits, e.g. MR, CT)";
    }
    for (char c : part) {
      if (!is_alpha(c) && !is_digit(c)) {
        return "modality " + quoted(modality) + " contains " + quoted(std::string(1, c)) +
               "; a modality is 1-16 letters or digits, e.g. MR, CT";
      }
    }
    if (bs == std::string_view::npos) break;
    start = bs + 1;
  }
  return {};
}

std::string check_key(std::string_view value, std::string_view what, std::size_t max_chars) {
  if (excel_scientific(value)) {
    return std::string(what) + " " + quoted(value) +
           " looks like a number shortened to scientific notation by a spreadsheet; format "
           "the column as Text and export the CSV again";
  }
  for (char c : value) {
    if (c == '*' || c == '?') {
      return std::string(what) + " " + quoted(value) + " contains the wildcard " +
             quoted(std::string(1, c)) +
             ", which would match other studies on the PACS; give the exact value";
    }
    if (c == '\\') {
      return std::string(what) + " " + quoted(value) +
             " contains '\\', which DICOM reads as a list of values; give one value";
    }
  }
  const std::size_t len = utf8_length(value);
  if (len > max_chars) {
    return std::string(what) + " " + quoted(value) + " is " + std::to_string(len) +
           " characters long; DICOM allows at most " + std::to_string(max_chars);
  }
  return {};
}

std::string check_label(std::string_view label, std::string_view what) {
  std::string bad;  // distinct offending characters, quoted, comma separated
  int bad_count = 0;
  std::size_t pos = 0;
  std::size_t chars = 0;
  while (pos < label.size()) {
    char32_t cp = 0;
    std::size_t len = text::decode_utf8(label, pos, cp);
    if (len == 0) len = 1;
    ++chars;
    if (len > 1 || !text::is_label_char(label[pos])) {
      const std::string_view ch = label.substr(pos, len);
      const std::string shown = ch == " " ? std::string("' ' (space)") : quoted(ch);
      if (bad.find(shown) == std::string::npos && bad_count < 8) {
        if (!bad.empty()) bad += ", ";
        bad += shown;
        ++bad_count;
      }
    }
    pos += len;
  }
  if (!bad.empty()) {
    return std::string(what) + " " + quoted(label) + " contains " + bad +
           "; XNAT labels may only use letters, digits, '_' and '-'";
  }
  if (chars == 0) return std::string(what) + " is empty";
  if (chars > text::kMaxLabelLength) {
    return std::string(what) + " " + quoted(label) + " is " + std::to_string(chars) +
           " characters long; XNAT labels have at most " + std::to_string(text::kMaxLabelLength);
  }
  return {};
}

std::size_t utf8_length(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

}  // namespace p2x::intake::detail
