// lib/text: trim, the DICOM UID rule, the XNAT label rule, base64, UTF-8 decoding, values cut
// for messages and spreadsheet-safe CSV fields.
#include <catch2/catch.hpp>

#include <string>

#include "text/text.hpp"

using namespace std::string_literals;
namespace text = p2x::text;
using text::UidFault;

TEST_CASE("trim drops ASCII white space and NUL padding at both ends only", "[text][trim]") {
  CHECK(text::trim("") == "");
  CHECK(text::trim(" \t\r\n\v\f") == "");
  CHECK(text::trim("abc") == "abc");
  CHECK(text::trim("  a b\tc \r\n") == "a b\tc");
  CHECK(text::trim("\tuser") == "user");
  CHECK(text::trim("1.2.840.10008\0"s) == "1.2.840.10008");  // UI value padded with NUL
  CHECK(text::trim("\0\0"s) == "");
  CHECK(text::trim("a\0b"s) == "a\0b"s);                          // inner bytes are kept
  CHECK(text::trim("STORESCP        ") == "STORESCP");            // AE title padding
  CHECK(text::trim("\xC2\xA0x\xC2\xA0") == "\xC2\xA0x\xC2\xA0");  // NBSP is not ASCII
}

TEST_CASE("ASCII case folding leaves other bytes alone", "[text][case]") {
  CHECK(text::to_lower("") == "");
  CHECK(text::to_lower("Accession_No. 7") == "accession_no. 7");
  CHECK(text::to_upper("mr\\pt") == "MR\\PT");
  CHECK(text::to_upper("\xC3\xA4x") == "\xC3\xA4X");  // UTF-8 bytes unchanged
  CHECK(text::to_lower('@') == '@');
  CHECK(text::to_lower('[') == '[');
  CHECK(text::to_upper('`') == '`');
  CHECK(text::to_upper('{') == '{');
  CHECK(text::iequals("Sess-01", "sESS-01"));
  CHECK(text::iequals("", ""));
  CHECK_FALSE(text::iequals("a", "ab"));
  CHECK_FALSE(text::iequals("@", "`"));
  CHECK_FALSE(text::iequals("[", "{"));
}

TEST_CASE("UIDs: digits and dots, 1 to 64 characters, no empty component", "[text][uid]") {
  CHECK(text::is_valid_uid("1.2.840.10008.5.1.4.1.1.2"));
  CHECK(text::is_valid_uid("0"));
  CHECK(text::is_valid_uid("0.0.1"));
  CHECK(text::is_valid_uid("1.2.0"));
  CHECK(text::is_valid_uid("1.2.03.4"));  // leading zero: accepted on purpose (see text.hpp)

  std::string uid64 = "1.2.";
  uid64 += std::string(64 - uid64.size(), '9');
  REQUIRE(uid64.size() == 64);
  CHECK(text::is_valid_uid(uid64));
  CHECK(text::uid_fault(uid64 + "9") == UidFault::TooLong);
  CHECK(text::uid_fault(std::string(65, '1')) == UidFault::TooLong);

  CHECK(text::uid_fault("") == UidFault::Empty);
  CHECK(text::uid_fault(".1.2") == UidFault::EmptyComponent);
  CHECK(text::uid_fault("1.2.") == UidFault::EmptyComponent);
  CHECK(text::uid_fault("1..2") == UidFault::EmptyComponent);
  CHECK(text::uid_fault(".") == UidFault::EmptyComponent);
  CHECK(text::uid_fault("..") == UidFault::EmptyComponent);
  CHECK(text::uid_fault("1.2.abc") == UidFault::BadCharacter);
  CHECK(text::uid_fault("1.2 .3") == UidFault::BadCharacter);
  CHECK(text::uid_fault("1.2/3") == UidFault::BadCharacter);
  CHECK(text::uid_fault("1.2.3\0"s) == UidFault::BadCharacter);  // trim padding first
  CHECK(text::uid_fault("1.2.*") == UidFault::BadCharacter);
  CHECK(text::uid_fault("-1.2") == UidFault::BadCharacter);
  CHECK_FALSE(text::is_valid_uid("1.2."));
}

TEST_CASE("XNAT labels: 1 to 64 of letters, digits, '_' and '-'", "[text][labels]") {
  CHECK(text::is_valid_label("Sub_01-a"));
  CHECK(text::is_valid_label("x"));
  CHECK(text::is_valid_label(std::string(64, 'a')));
  CHECK_FALSE(text::is_valid_label(std::string(65, 'a')));
  CHECK_FALSE(text::is_valid_label(""));
  CHECK_FALSE(text::is_valid_label("a b"));
  CHECK_FALSE(text::is_valid_label(" "));
  CHECK_FALSE(text::is_valid_label("a.b"));
  CHECK_FALSE(text::is_valid_label("a/b"));
  CHECK_FALSE(text::is_valid_label("caf\xC3\xA9"));  // umlaut/accent, UTF-8
  CHECK_FALSE(text::is_valid_label("M\xFCller"));    // umlaut, Latin-1
  CHECK(text::is_label_char('_'));
  CHECK(text::is_label_char('Z'));
  CHECK_FALSE(text::is_label_char('.'));
  CHECK_FALSE(text::is_label_char('\0'));
}

TEST_CASE("sanitize_label replaces each foreign character by one '_'", "[text][labels]") {
  CHECK(text::sanitize_label("Sub_01-a") == "Sub_01-a");
  CHECK(text::sanitize_label("12.345/6 7") == "12_345_6_7");
  CHECK(text::sanitize_label("  ") == "__");
  // One '_' per code point, not per byte.
  CHECK(text::sanitize_label("J\xC3\xBCrgen M\xC3\xBCller") == "J_rgen_M_ller");
  CHECK(text::sanitize_label("\xF0\x9F\x98\x80x") == "_x");  // 4-byte code point
  CHECK(text::sanitize_label("M\xFCller") == "M_ller");      // Latin-1 byte
  CHECK(text::sanitize_label("bad\xFF") == "bad_");          // invalid byte
  CHECK(text::sanitize_label("\xB0"
                             "C") == "_C");  // stray continuation byte
  CHECK(text::sanitize_label("") == "");
  CHECK(text::is_valid_label(text::sanitize_label("a.b c/d")));
}

TEST_CASE("base64 matches the RFC 4648 test vectors", "[text][base64]") {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    INFO(plain);
    CHECK(text::base64_encode(plain) == coded);
    CHECK(text::base64_decode(coded) == std::optional<std::string>(plain));
  }
  CHECK(text::base64_encode("alice:secret") == "YWxpY2U6c2VjcmV0");
}

TEST_CASE("base64 round-trips every byte value", "[text][base64]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    const std::string part = all.substr(all.size() - n);
    CHECK(text::base64_decode(text::base64_encode(part)) == std::optional<std::string>(part));
  }
  CHECK(text::base64_decode(text::base64_encode(all)) == std::optional<std::string>(all));
  CHECK(text::base64_encode("\xFB\xFF") == "+/8=");  // both non-alphanumeric letters
}

TEST_CASE("base64_decode refuses what is not padded base64", "[text][base64]") {
  for (const char* bad : {"abc", "Zg=", "ab!d", "a=bc",
                          "Zg==Zg==", "====", "Z===", "Zm9v\r\n==", "Zm 9", "Zm9v====", "-_8="}) {
    INFO(bad);
    CHECK_FALSE(text::base64_decode(bad).has_value());
  }
}

TEST_CASE("decode_utf8 reads one code point or refuses invalid bytes", "[text][utf8]") {
  char32_t cp = 0;
  CHECK(text::decode_utf8("A", 0, cp) == 1);
  CHECK(cp == U'A');
  CHECK(text::decode_utf8("\xC3\xBC", 0, cp) == 2);
  CHECK(cp == U'\u00FC');
  CHECK(text::decode_utf8("x\xE2\x80\x8B", 1, cp) == 3);
  CHECK(cp == U'\u200B');
  CHECK(text::decode_utf8("\xF0\x9F\x98\x80", 0, cp) == 4);
  CHECK(cp == U'\U0001F600');
  CHECK(text::decode_utf8("\xC0\xAF", 0, cp) == 0);          // overlong '/'
  CHECK(text::decode_utf8("\xED\xA0\x80", 0, cp) == 0);      // surrogate
  CHECK(text::decode_utf8("\xF4\x90\x80\x80", 0, cp) == 0);  // above U+10FFFF
  CHECK(text::decode_utf8("\xC3", 0, cp) == 0);              // cut short
  CHECK(text::decode_utf8("\x80", 0, cp) == 0);              // lone continuation byte
  CHECK(text::decode_utf8("\xFC", 0, cp) == 0);              // Latin-1 u-umlaut
}

TEST_CASE("abbreviate keeps short values and cuts long ones with their size", "[text][message]") {
  CHECK(text::abbreviate("") == "");
  CHECK(text::abbreviate("ACC123") == "ACC123");
  const std::string sixty(60, 'x');
  CHECK(text::abbreviate(sixty) == sixty);
  CHECK(text::abbreviate(sixty + "y") == sixty + "\xE2\x80\xA6(61 bytes)");
  const std::string huge(10 * 1024 * 1024, 'A');
  const std::string cut = text::abbreviate(huge);
  CHECK(cut == std::string(60, 'A') + "\xE2\x80\xA6(10485760 bytes)");
  // Never inside a code point: 3 characters of 2 bytes each.
  CHECK(text::abbreviate("\xC3\xA4\xC3\xB6\xC3\xBC\xC3\xA4", 3) ==
        "\xC3\xA4\xC3\xB6\xC3\xBC\xE2\x80\xA6(8 bytes)");
  // Invalid bytes count as one character each.
  CHECK(text::abbreviate("\xFF\xFE\xFD", 2) == "\xFF\xFE\xE2\x80\xA6(3 bytes)");
}

TEST_CASE("formula triggers are OWASP's list, at the start only", "[text][csv]") {
  for (const char* v : {"=cmd|' /C calc'!A0", "@SUM(1)", "+1-1", "-1", "\tx", "\rx"}) {
    INFO(v);
    CHECK(text::formula_trigger(v) == v[0]);
  }
  for (const char* v : {"", "ACC-1", "a=b", " =1", "1.2.3", "'=1"}) {
    INFO(v);
    CHECK(text::formula_trigger(v) == '\0');
  }
}

TEST_CASE("csv_field neutralises formulas and quotes what needs it", "[text][csv]") {
  CHECK(text::csv_field("") == "");
  CHECK(text::csv_field("ACC-1") == "ACC-1");
  CHECK(text::csv_field("=cmd|' /C calc'!A0") == "\"'=cmd|' /C calc'!A0\"");
  CHECK(text::csv_field("@SUM(1)") == "\"'@SUM(1)\"");
  CHECK(text::csv_field("+1-1") == "\"'+1-1\"");
  CHECK(text::csv_field("-1") == "\"'-1\"");
  CHECK(text::csv_field("\t=1") == "\"'\t=1\"");
  CHECK(text::csv_field("=\"x\"") == "\"'=\"\"x\"\"\"");  // inner quotes doubled
  CHECK(text::csv_field("a,b") == "\"a,b\"");
  CHECK(text::csv_field("a;=1") == "\"a;=1\"");  // ';'-splitting spreadsheets
  CHECK(text::csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(text::csv_field("two\nlines") == "\"two\nlines\"");
}

TEST_CASE("json_nesting_depth counts brackets outside strings and stops past the limit", "[text]") {
  using text::json_nesting_depth;
  CHECK(json_nesting_depth("", 64) == 0);
  CHECK(json_nesting_depth(R"({"a":[1,{"b":[]}]})", 64) == 4);
  CHECK(json_nesting_depth(R"({"a":"[[[[{{{{"})", 64) == 1);
  CHECK(json_nesting_depth(R"({"a":"\"[[[[","b":[[]]})", 64) == 3);
  CHECK(json_nesting_depth(R"({"a":"\\","b":[[]]})", 64) == 3);
  CHECK(json_nesting_depth("]]]]}}}[", 64) == 1);
  std::size_t at = 0;
  CHECK(json_nesting_depth("[[]]", 64, &at) == 2);
  CHECK(at == std::string::npos);
  const std::string deep(1000000, '[');
  CHECK(json_nesting_depth(deep, 64, &at) == 65);
  CHECK(at == 64);
}
