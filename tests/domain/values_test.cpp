// lib/domain: every enum value has one text form that parses back to it; any other text
// (another case, padding, a neighbour's word) is none; destination_of reads the recorded
// destination first and the configuration only for a job without one.
#include <catch2/catch.hpp>

#include <string>

#include "domain/values.hpp"

using namespace p2x::domain;

TEST_CASE("each value's text parses back to it", "[domain]") {
  for (RowKind k : kRowKinds) CHECK(parse_row_kind(to_string(k)) == k);
  for (Destination d : kDestinations) CHECK(parse_destination(to_string(d)) == d);
  for (PushMethod m : kPushMethods) CHECK(parse_push_method(to_string(m)) == m);
  // The words the store, the config and the IPC answers have always held.
  CHECK(to_string(RowKind::Accession) == "accession");
  CHECK(to_string(RowKind::PatientDate) == "patient_date");
  CHECK(to_string(RowKind::StudyUid) == "study_uid");
  CHECK(to_string(Destination::Archive) == "archive");
  CHECK(to_string(Destination::Prearchive) == "prearchive");
  CHECK(to_string(PushMethod::Rest) == "rest");
  CHECK(to_string(PushMethod::CStore) == "cstore");
}

TEST_CASE("any other text names no value", "[domain]") {
  for (const char* text : {"", "Accession", "accession ", "patient", "archive", "uid"}) {
    CHECK_FALSE(parse_row_kind(text));
  }
  for (const char* text : {"", "Archive", "pre-archive", "rest", "prearchive\n"}) {
    CHECK_FALSE(parse_destination(text));
  }
  for (const char* text : {"", "REST", "c-store", "dicom", "archive"}) {
    CHECK_FALSE(parse_push_method(text));
  }
}

TEST_CASE("the recorded destination wins over the configuration", "[domain]") {
  CHECK(destination_of(Destination::Archive, true) == Destination::Archive);
  CHECK(destination_of(Destination::Prearchive, false) == Destination::Prearchive);
  CHECK(destination_of(Destination::Prearchive, std::nullopt) == Destination::Prearchive);
  // No record yet: forced by xnat.prearchive, else ("project" before the check) the archive.
  CHECK(destination_of(std::nullopt, true) == Destination::Prearchive);
  CHECK(destination_of(std::nullopt, false) == Destination::Archive);
  CHECK(destination_of(std::nullopt, std::nullopt) == Destination::Archive);
}
