// intake/csv_reader: RFC 4180 tokenizer.
#include "intake/csv_reader.hpp"

namespace p2x::intake::detail {

bool CsvReader::next(Record& record, std::vector<SyntaxError>& errors) {
  if (pos_ >= in_.size()) return false;
  record.cells.clear();
  record.text.clear();
  record.line = line_;
  const std::size_t n = in_.size();

  for (;;) {
    Cell cell;
    cell.line = line_;
    cell.begin = record.text.size();
    const int column = static_cast<int>(record.cells.size()) + 1;

    // A quoted cell may be preceded by blanks: `a, "b"`.
    std::size_t q = pos_;
    while (q < n && is_blank(in_[q])) ++q;
    if (q < n && in_[q] == '"') {
      cell.quoted = true;
      const int open_line = line_;
      std::size_t p = q + 1;
      std::size_t chunk = p;
      bool closed = false;
      while (p < n) {
        const char c = in_[p];
        if (c == '"') {
          if (p + 1 < n && in_[p + 1] == '"') {  // "" escape: keep one quote
            record.text.append(in_.data() + chunk, p + 1 - chunk);
            p += 2;
            chunk = p;
            continue;
          }
          record.text.append(in_.data() + chunk, p - chunk);
          ++p;
          closed = true;
          break;
        }
        if (c == '\n') {
          ++line_;
        } else if (c == '\r' && (p + 1 >= n || in_[p + 1] != '\n')) {
          ++line_;
        }
        ++p;
      }
      if (!closed) {
        record.text.append(in_.data() + chunk, p - chunk);
        errors.push_back({open_line, column,
                          "quoted value starting on this line is never closed; add the "
                          "closing '\"' (a '\"' inside a quoted value is written '\"\"')"});
      }
      // After the closing quote only blanks may come before the delimiter or line end.
      while (p < n && is_blank(in_[p])) ++p;
      if (p < n && in_[p] != delim_ && in_[p] != '\n' && in_[p] != '\r') {
        errors.push_back({line_, column,
                          "unexpected text after the closing '\"' of a quoted value; write a "
                          "'\"' inside a quoted value as '\"\"'"});
        const std::size_t rest = p;
        while (p < n && in_[p] != delim_ && in_[p] != '\n' && in_[p] != '\r') ++p;
        record.text.append(in_.data() + rest, p - rest);
      }
      pos_ = p;
    } else {
      std::size_t p = pos_;
      while (p < n) {
        const char c = in_[p];
        if (c == delim_ || c == '\n' || c == '\r') break;
        ++p;
      }
      record.text.append(in_.data() + pos_, p - pos_);
      pos_ = p;
    }
    cell.end = record.text.size();
    record.cells.push_back(cell);

    if (pos_ >= n) return true;
    const char c = in_[pos_];
    if (c == delim_) {
      ++pos_;
      continue;
    }
    // Line end: CRLF, LF or lone CR.
    if (c == '\r' && pos_ + 1 < n && in_[pos_ + 1] == '\n') ++pos_;
    ++pos_;
    ++line_;
    return true;
  }
}

}  // namespace p2x::intake::detail
