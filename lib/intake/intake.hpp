// intake: turns the bytes of a study-list CSV into validated rows, or into a list of problems.
//
// Reads RFC 4180 CSV (quoted fields, embedded delimiters and newlines, "" escapes), UTF-8 with
// or without BOM, CRLF/LF/CR line ends, delimiter detected among ',', ';' and tab. Strips stray
// control and invisible characters (form feed, zero-width space, NBSP, ...) around headers and
// values. Matches headers case- and space-insensitively with aliases (XNAT DQR batch CSV
// headings work unchanged). Validates every row before anything is queued: one problem anywhere
// means the whole CSV is rejected, and every problem is reported with its line and column.
//
// Row kind: a Study Instance UID makes a StudyUid row; else an accession number makes an
// Accession row; else patient ID + study date make a PatientDate row; anything else is a problem.
//
// Label generation when the CSV gives none (generated labels are checked like given ones):
//   subject: text::sanitize_label(Patient ID) if the row has one, else empty (resolved later from
//            the PatientID the PACS returns);
//   session: Accession rows    -> text::sanitize_label(accession number);
//            PatientDate rows  -> <subject, or text::sanitize_label(Patient ID)>_<YYYYMMDD>;
//            StudyUid rows     -> empty (generated after C-FIND).
// Session labels must be unique within the CSV (compared ignoring case); two different patient
// IDs that sanitize to the same generated subject label are a problem too.
//
// Other rules: dates YYYYMMDD, YYYY-MM-DD or DD/MM/YYYY (also DD.MM.YYYY; never US order) are
// normalised to YYYYMMDD; accession numbers (<= 16 chars) and patient IDs (<= 64) must not hold
// C-FIND wildcards ('*', '?') or '\\'; a duplicate study key (accession, UID, or patient + date +
// modality) is a problem naming the earlier line; unknown columns are ignored; blank lines are
// skipped. Problems are sorted by line and column and capped at 1000 plus a "... and N more".
// A value quoted in a message is cut to 60 characters plus "…(N bytes)" (text::abbreviate).
//
// Warnings do not reject the CSV: a value in a column pacs2xnat reads that starts with '=', '+',
// '-' or '@' (text::formula_trigger; a cleaned cell never starts with a tab or CR) is named with
// its line and column, since a spreadsheet would run it as a formula (CSV injection). No column
// we read is numeric (dates are rewritten as YYYYMMDD), so a leading '-' is never a negative
// number here; `pacs2xnat report` writes such values as text (text::csv_field).
//
// Reading the file (the CLI's side, read_csv_file): regular files only, at most a given size,
// so that /dev/zero, a FIFO or a directory is refused by name instead of read without end.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "domain/values.hpp"
#include "text/text.hpp"

namespace p2x::intake {

// How a row identifies its study on the PACS (its text form: domain::to_string).
using RowKind = domain::RowKind;
using domain::to_string;

struct Row {
  int line = 0;  // 1-based physical line where the row starts in the file
  int row = 0;   // 1-based data row number (header excluded)
  RowKind kind = RowKind::Accession;
  std::string accession;   // AccessionNumber
  std::string patient_id;  // PatientID
  std::string study_date;  // normalised to YYYYMMDD; empty if absent
  std::string study_uid;   // StudyInstanceUID
  std::string modality;    // optional filter, upper case, e.g. "MR" (or a DICOM list "MR\\PT")
  std::string subject;     // XNAT subject label; empty = resolved from the PACS PatientID later
  std::string session;     // XNAT session label; empty = generated after C-FIND (see README)
};

struct Problem {
  int line = 0;             // 1-based physical line (0 = the file as a whole)
  int column = 0;           // 1-based column (0 = the whole line)
  std::string column_name;  // header of that column as written in the file, if known
  std::string message;      // what is wrong and how to fix it
};

struct Result {
  std::vector<Row> rows;  // every data row when ok(); empty when there is a problem
  std::vector<Problem> problems;
  std::vector<Problem> warnings;     // formula-like values; sorted and capped like problems
  std::vector<std::string> headers;  // cleaned header cells as written (text::abbreviate'd)
  char delimiter = ',';
  bool ok() const { return problems.empty(); }
};

// Formats a problem as "line 12, column 3 (Session): message".
std::string format(const Problem& p);

// Parses and validates a whole CSV.
Result parse_csv(std::string_view bytes);

// A CSV file that cannot be read: the message names the path and what it is or what failed.
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A CSV file larger than the caller's limit (nothing of it was kept).
struct FileTooLarge : FileError {
  FileTooLarge(const std::string& path, std::uint64_t size, std::uint64_t limit);
  std::uint64_t size;  // the file's size in bytes (at least limit + 1)
  std::uint64_t limit;
};

// The bytes of the regular file at `path`, at most `max_bytes` of them. Throws FileError for a
// missing or unreadable file and for anything that is not a regular file (a directory, a device
// such as /dev/zero, a FIFO, a socket), FileTooLarge beyond `max_bytes`.
std::string read_csv_file(const std::string& path, std::uint64_t max_bytes);

}  // namespace p2x::intake
