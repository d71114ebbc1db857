// domain/values: the few named values the modules pass between them, as enums, each with its one
// text form (to_string) and the way back (parse_*). The text is what the store's columns, the
// configuration, the IPC answers and the report hold; nothing else spells these words.
//
//   RowKind      how a CSV row names its study: "accession", "patient_date", "study_uid"
//   Destination  where a job's sessions go in XNAT: "archive", "prearchive"
//   PushMethod   how studies reach XNAT (xnat.push): "rest", "cstore"
//
// The archive-or-prearchive rule (destination_of) lives here too, so the push, the verification
// and the project check read the same answer.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace p2x::domain {

// How a row identifies its study on the PACS (intake decides; see intake.hpp).
enum class RowKind { Accession, PatientDate, StudyUid };
// Where a job's sessions go: decided at its first push and recorded on the job.
enum class Destination { Archive, Prearchive };
// How studies are pushed to XNAT: the REST import service or C-STORE to its DICOM receiver.
enum class PushMethod { Rest, CStore };

std::string_view to_string(RowKind kind);
std::string_view to_string(Destination destination);
std::string_view to_string(PushMethod method);

// The value a text names (exactly, as to_string writes it); nullopt for any other text.
std::optional<RowKind> parse_row_kind(std::string_view text);
std::optional<Destination> parse_destination(std::string_view text);
std::optional<PushMethod> parse_push_method(std::string_view text);

// Every value, in declaration order (for readers that list the allowed words).
constexpr std::array<RowKind, 3> kRowKinds{RowKind::Accession, RowKind::PatientDate,
                                           RowKind::StudyUid};
constexpr std::array<Destination, 2> kDestinations{Destination::Archive, Destination::Prearchive};
constexpr std::array<PushMethod, 2> kPushMethods{PushMethod::Rest, PushMethod::CStore};

// Where a job's sessions are: the destination recorded on the job; for a job without one (not
// pushed yet, or pushed by a daemon older than the record) where the configuration forces them
// (xnat.prearchive true/false), else the archive.
Destination destination_of(std::optional<Destination> recorded,
                           std::optional<bool> configured_prearchive);

}  // namespace p2x::domain
