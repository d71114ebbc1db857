// intake/text: UTF-8 checking and cleaning of CSV cell text (private to lib/intake).
//
// A cleaned cell has no invisible characters (zero-width space/joiners, word joiner, BOM,
// soft hyphen, bidi marks), no C0/C1 control characters (form feed, vertical tab, NUL, ...),
// every space-like character (tab, newline, NBSP, Unicode spaces) turned into ' ', and no
// leading or trailing spaces. Identifiers in a study list never carry such characters on purpose.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace p2x::intake::detail {

struct CleanInfo {
  static constexpr std::size_t npos = std::string_view::npos;
  std::size_t bad_utf8 = npos;  // offset in the raw text of the first invalid UTF-8 byte
  unsigned char bad_byte = 0;   // that byte
};

// Appends the cleaned form of `raw` to `out`.
CleanInfo clean_append(std::string_view raw, std::string& out);

// Number of physical line breaks (CRLF, LF or lone CR) in text[0, end).
int count_line_breaks(std::string_view text, std::size_t end);

// Lower-case ASCII letters and digits of `text`, everything else dropped ("Acc_No." -> "accno").
std::string fold_header(std::string_view heading);

}  // namespace p2x::intake::detail
