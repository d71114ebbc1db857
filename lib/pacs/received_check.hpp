// pacs/received_check: what a received Part 10 file says it is, checked before it is routed.
//
// The Storage SCP and the C-GET SCU land each incoming data set in a temp file (DCMTK writes the
// meta header, the peer's bytes follow unchanged) and then ask here which study, series and
// instance it holds. Everything in the file is the peer's choice, so nothing is trusted: the
// header is read with values over 1 KiB left on disk (pixel data is never loaded), each of the
// three UIDs must pass text::is_valid_uid (digits and dots, so none can name another path or act
// as a C-FIND wildcard), and the SOP Instance UID must be the one the C-STORE request announced.
// A deflated data set is refused unread: inflated, no value can stay on disk, and DCMTK allocates
// each value's declared length up front, so a few KiB could make it claim 4 GiB per value (found
// by fuzz_received) and a deflate bomb fill it; the validation and the push would read it again.
// Pure apart from reading the file; tests/fuzz/received_fuzz.cpp feeds it arbitrary bytes.
#pragma once

#include <string>

namespace p2x::pacs {

// Why a received file is refused (None: accepted).
enum class ReceivedFault {
  None,
  Unreadable,   // not a DICOM file DCMTK can parse
  Deflated,     // a deflated transfer syntax: refused unread (see the top of this file)
  BadUid,       // Study, Series or SOP Instance UID missing or not a UID we accept
  SopMismatch,  // the SOP Instance UID is not the one the C-STORE request announced
};

struct ReceivedCheck {
  ReceivedFault fault = ReceivedFault::None;
  std::string error;  // "" when accepted, else the reason (fit for a C-STORE ErrorComment)
  // As read from the file (trimmed); set as far as reading got, valid only when ok().
  std::string study_uid, series_uid, sop_uid;
  bool ok() const { return fault == ReceivedFault::None; }
};

// Reads the header of the Part 10 file at `path` and checks it against `announced_sop_uid`
// (the request's Affected SOP Instance UID). Never throws for anything the file holds.
ReceivedCheck check_received_file(const std::string& path, const std::string& announced_sop_uid);

}  // namespace p2x::pacs
