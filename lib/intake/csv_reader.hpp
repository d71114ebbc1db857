// intake/csv_reader: RFC 4180 tokenizer (private to lib/intake).
//
// Splits bytes into records of raw cells: quoted cells may hold delimiters, line breaks and ""
// escapes; records end at CRLF, LF or a lone CR. Tracks physical line numbers across line
// breaks inside quoted cells. Allocation-free per character: a Record's buffers are reused.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace p2x::intake::detail {

struct Cell {
  std::size_t begin = 0;  // raw (unescaped) text is Record::text[begin, end)
  std::size_t end = 0;
  int line = 0;  // physical line where the cell starts
  bool quoted = false;
};

struct Record {
  int line = 0;  // physical line where the record starts
  std::vector<Cell> cells;
  std::string text;
  std::string_view raw(const Cell& c) const {
    return std::string_view(text).substr(c.begin, c.end - c.begin);
  }
};

struct SyntaxError {
  int line = 0;
  int column = 0;  // 1-based cell index
  std::string message;
};

class CsvReader {
 public:
  CsvReader(std::string_view bytes, char delimiter) : in_(bytes), delim_(delimiter) {}

  // Reads the next record into `record`; false at the end of the input. Quoting mistakes are
  // appended to `errors` and the reader carries on.
  bool next(Record& record, std::vector<SyntaxError>& errors);

 private:
  bool is_blank(char c) const { return c == ' ' || (c == '\t' && delim_ != '\t'); }
  bool ends_cell(char c) const { return c == delim_ || c == '\n' || c == '\r'; }

  // Appends the unescaped text of the quoted cell whose '"' is at in_[quote] and moves past it;
  // quoting mistakes go to `errors` (column: the cell's 1-based index).
  void read_quoted(std::size_t quote, int column, std::string& text,
                   std::vector<SyntaxError>& errors);
  // Appends the text of an unquoted cell up to the delimiter or line end.
  void read_plain(std::string& text);
  // Consumes what ends a cell: true after a delimiter (another cell follows), false after a line
  // end or at the end of the input (the record is complete).
  bool next_cell();

  std::string_view in_;
  char delim_;
  std::size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace p2x::intake::detail
