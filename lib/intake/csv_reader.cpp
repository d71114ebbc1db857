// intake/csv_reader: RFC 4180 tokenizer.
#include "intake/csv_reader.hpp"

namespace p2x::intake::detail {

bool CsvReader::next(Record& record, std::vector<SyntaxError>& errors) {
  if (pos_ >= in_.size()) return false;
  record.cells.clear();
  record.text.clear();
  record.line = line_;

  for (;;) {
    Cell cell;
    cell.line = line_;
    cell.begin = record.text.size();
    const int column = static_cast<int>(record.cells.size()) + 1;

    // A quoted cell may be preceded by blanks: `a, "b"`.
    std::size_t q = pos_;
    while (q < in_.size() && is_blank(in_[q])) ++q;
    cell.quoted = q < in_.size() && in_[q] == '"';
    if (cell.quoted) {
      read_quoted(q, column, record.text, errors);
    } else {
      read_plain(record.text);
    }
    cell.end = record.text.size();
    record.cells.push_back(cell);
    if (!next_cell()) return true;
  }
}

void CsvReader::read_quoted(std::size_t quote, int column, std::string& text,
                            std::vector<SyntaxError>& errors) {
  const std::size_t n = in_.size();
  const int open_line = line_;
  std::size_t p = quote + 1;
  std::size_t chunk = p;
  bool closed = false;
  while (p < n) {
    const char c = in_[p];
    if (c == '"') {
      if (p + 1 < n && in_[p + 1] == '"') {  // "" escape: keep one quote
        text.append(in_.data() + chunk, p + 1 - chunk);
        p += 2;
        chunk = p;
        continue;
      }
      text.append(in_.data() + chunk, p - chunk);
      ++p;
      closed = true;
      break;
    }
    if (c == '\n' || (c == '\r' && (p + 1 >= n || in_[p + 1] != '\n'))) ++line_;
    ++p;
  }
  if (!closed) {
    text.append(in_.data() + chunk, p - chunk);
    errors.push_back({open_line, column,
                      "quoted value starting on this line is never closed; add the "
                      "closing '\"' (a '\"' inside a quoted value is written '\"\"')"});
  }
  // After the closing quote only blanks may come before the delimiter or line end.
  while (p < n && is_blank(in_[p])) ++p;
  if (p < n && !ends_cell(in_[p])) {
    errors.push_back({line_, column,
                      "unexpected text after the closing '\"' of a quoted value; write a "
                      "'\"' inside a quoted value as '\"\"'"});
    const std::size_t rest = p;
    while (p < n && !ends_cell(in_[p])) ++p;
    text.append(in_.data() + rest, p - rest);
  }
  pos_ = p;
}

void CsvReader::read_plain(std::string& text) {
  std::size_t p = pos_;
  while (p < in_.size() && !ends_cell(in_[p])) ++p;
  text.append(in_.data() + pos_, p - pos_);
  pos_ = p;
}

bool CsvReader::next_cell() {
  if (pos_ >= in_.size()) return false;
  const char c = in_[pos_];
  if (c == delim_) {
    ++pos_;
    return true;
  }
  // Line end: CRLF, LF or lone CR.
  if (c == '\r' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '\n') ++pos_;
  ++pos_;
  ++line_;
  return false;
}

}  // namespace p2x::intake::detail
