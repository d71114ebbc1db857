// intake/fields: what a study-list column means and whether a value is acceptable
// (private to lib/intake). Header aliases, date parsing, UID/modality/label/key checks.
// Every check returns an empty string when the value is fine, else a message for a person.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace p2x::intake::detail {

enum class Field { Accession, PatientId, StudyDate, StudyUid, Modality, Subject, Session, None };
constexpr int kFieldCount = 7;

// Matches a cleaned header cell case-, space-, underscore- and punctuation-insensitively against
// the alias table.
Field match_header(std::string_view header);
// Every heading of the alias table for `field`, the canonical one first (none for None).
std::vector<std::string_view> header_aliases(Field field);
// Canonical heading, e.g. "Accession Number".
std::string_view field_title(Field field);
// "... 'Accession Number' (or Accession, ACC, ...), ..." for the no-key-column problem, made
// from the alias table so that it names every heading match_header() accepts.
std::string accepted_headings();

// Parses YYYYMMDD, YYYY-MM-DD (also YYYY/MM/DD, YYYY.MM.DD), DD/MM/YYYY (also DD.MM.YYYY,
// DD-MM-YYYY), optionally followed by a time ("2024-03-05 00:00" as Excel writes it).
// On success writes YYYYMMDD to `out` and returns "".
std::string parse_date(std::string_view text, std::string& out);

// DICOM UID syntax: text::is_valid_uid, with a message saying what is wrong.
std::string check_uid(std::string_view uid);
// Modality: 1-16 letters/digits (a DICOM multi-value such as "MR\PT" is accepted).
std::string check_modality(std::string_view modality);
// Accession number / patient ID used as C-FIND keys: no wildcards, no '\', DICOM length limit.
std::string check_key(std::string_view value, std::string_view what, std::size_t max_chars);
// XNAT label rule with a message naming the offending characters; `what` is e.g. "session label".
std::string check_label(std::string_view label, std::string_view what);

// Number of code points in valid UTF-8 text.
std::size_t utf8_length(std::string_view text);

}  // namespace p2x::intake::detail
