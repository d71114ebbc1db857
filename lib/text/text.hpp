// text: the one home for small text rules that several modules need.
//
// Each rule lives here once so that two modules cannot disagree on it: trimming, ASCII case
// folding (locale-independent, for keywords, headings and labels), what a DICOM UID
// may look like before it becomes a file name, what an XNAT label may hold (and how a foreign
// value is turned into one), base64 for bytes inside JSON or HTTP headers, UTF-8 decoding, how
// a foreign value is shortened before a message quotes it, and how a value is written into a CSV
// that a spreadsheet may open (OWASP's CSV-injection rule).
// Everything is pure, allocation-light and ASCII-only where it says so; nothing here logs or
// throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace p2x::text {

// ---- trimming --------------------------------------------------------------------------------

// `s` without leading and trailing ASCII white space (' ', \t, \n, \v, \f, \r) and NUL bytes.
// NUL counts as padding because DICOM pads odd-length UI values with one NUL and fixed-size
// C strings (AE titles from DCMTK) may carry trailing NULs; no caller keeps a NUL at an edge.
std::string trim(std::string_view s);

// ---- ASCII case ------------------------------------------------------------------------------

// 'A'-'Z' to 'a'-'z'; every other byte (UTF-8 included) unchanged. Independent of the locale.
constexpr char to_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}
constexpr char to_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
}
std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);
// Equal ignoring ASCII case.
bool iequals(std::string_view a, std::string_view b);

// ---- DICOM UIDs ------------------------------------------------------------------------------

constexpr std::size_t kMaxUidLength = 64;

// Why a text is not a UID we accept; None when it is one.
enum class UidFault {
  None,
  Empty,           // ""
  BadCharacter,    // anything but digits and '.'
  TooLong,         // more than kMaxUidLength characters
  EmptyComponent,  // leading, trailing or doubled '.'
};

// The one UID rule of pacs2xnat: 1-64 characters, digits and dots only, no empty component.
// Such a UID is safe as a file or directory name ("." and ".." and '/' are impossible) and as an
// exact C-FIND/C-MOVE key (no wildcard, no '\'). Components with a leading zero ("1.2.03") are
// ACCEPTED on purpose: PS3.5 9.1 forbids them, but old modalities and PACSes did write such UIDs
// and they are still stored; refusing them would make those studies impossible to list, retrieve
// or store, and a leading zero does not make a name any less safe.
UidFault uid_fault(std::string_view uid);
inline bool is_valid_uid(std::string_view uid) {
  return uid_fault(uid) == UidFault::None;
}

// ---- XNAT labels -----------------------------------------------------------------------------

constexpr std::size_t kMaxLabelLength = 64;

// XNAT's label (and project ID) charset: ASCII letters, digits, '_' and '-'.
bool is_label_char(char c);
// 1-64 label characters.
bool is_valid_label(std::string_view label);
// Replaces every character outside the label charset by one '_': one per UTF-8 code point, one
// per byte that is not valid UTF-8 (a Latin-1 PatientID). Not cut to 64 characters.
std::string sanitize_label(std::string_view text);

// ---- base64 (RFC 4648, standard alphabet, padded) ---------------------------------------------

std::string base64_encode(std::string_view bytes);
// The decoded bytes, or nullopt unless `text` is padded base64 (length a multiple of 4, only the
// alphabet, at most two '=' and only at the end). No white space or line breaks are allowed.
std::optional<std::string> base64_decode(std::string_view text);

// ---- UTF-8 -----------------------------------------------------------------------------------

// Decodes one UTF-8 code point at text[pos]; returns its length, or 0 if the bytes there are
// not valid UTF-8 (overlong forms, surrogates and values above U+10FFFF are invalid).
std::size_t decode_utf8(std::string_view text, std::size_t pos, char32_t& cp);

// ---- values quoted in messages ---------------------------------------------------------------

constexpr std::size_t kMessageValueChars = 60;

// `value` as a message may quote it: unchanged up to `max_chars` code points, else its first
// `max_chars` code points (never cut inside one) followed by "…(N bytes)" with its full size, so
// that a 10 MB cell never fills a message. Invalid UTF-8 bytes count as one character each.
std::string abbreviate(std::string_view value, std::size_t max_chars = kMessageValueChars);

// ---- CSV for spreadsheets (OWASP CSV injection) ----------------------------------------------

// The character that makes a spreadsheet read a cell starting with it as a formula ('=', '+',
// '-', '@', tab or carriage return: OWASP's list), or '\0' when `value` does not start with one.
char formula_trigger(std::string_view value);

// One field of a CSV file that people open in a spreadsheet: a value starting with a formula
// trigger gets a leading single quote (the spreadsheet shows text, never runs it), and the field
// is enclosed in double quotes (inner '"' doubled) when it was neutralised or holds ',', ';',
// '"', a tab or a line break (';' and tab: locales whose spreadsheets split on them). Every other
// value is written as it is.
std::string csv_field(std::string_view value);

// The deepest nesting of objects and arrays in JSON text, brackets inside strings not counted,
// found by a scan without parsing (so a parser never recurses into text that is too deep). The
// scan stops at the first bracket that opens level `limit` + 1: it returns limit + 1 then, and
// that bracket's offset in `*past_limit` (std::string_view::npos when the text stays within).
std::size_t json_nesting_depth(std::string_view json_text, std::size_t limit,
                               std::size_t* past_limit = nullptr);

}  // namespace p2x::text
