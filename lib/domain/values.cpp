// domain/values: the text forms of the domain's enums (see values.hpp).
#include "domain/values.hpp"

namespace p2x::domain {

namespace {

template <typename Enum, std::size_t N>
std::optional<Enum> parse_among(const std::array<Enum, N>& all, std::string_view text) {
  for (Enum value : all) {
    if (to_string(value) == text) return value;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(RowKind kind) {
  switch (kind) {
    case RowKind::Accession:
      return "accession";
    case RowKind::PatientDate:
      return "patient_date";
    case RowKind::StudyUid:
      return "study_uid";
  }
  return "unknown";
}

std::string_view to_string(Destination destination) {
  switch (destination) {
    case Destination::Archive:
      return "archive";
    case Destination::Prearchive:
      return "prearchive";
  }
  return "unknown";
}

std::string_view to_string(PushMethod method) {
  switch (method) {
    case PushMethod::Rest:
      return "rest";
    case PushMethod::CStore:
      return "cstore";
  }
  return "unknown";
}

std::optional<RowKind> parse_row_kind(std::string_view text) {
  return parse_among(kRowKinds, text);
}

std::optional<Destination> parse_destination(std::string_view text) {
  return parse_among(kDestinations, text);
}

std::optional<PushMethod> parse_push_method(std::string_view text) {
  return parse_among(kPushMethods, text);
}

Destination destination_of(std::optional<Destination> recorded,
                           std::optional<bool> configured_prearchive) {
  if (recorded) return *recorded;
  return configured_prearchive.value_or(false) ? Destination::Prearchive : Destination::Archive;
}

}  // namespace p2x::domain
