// xnat/dicom_push: the alternative push method — C-STORE a study to XNAT's DICOM receiver.
//
// XNAT files instances received over DICOM by the routing text in Patient Comments (0010,4000),
// "Project: P Subject: S Session: E", and builds a session once the study has been idle for a
// site-configured interval; a study sent in bursts further apart than that becomes several
// sessions. So the whole study goes over ONE association, files loaded one at a time (memory does
// not grow with study size), each with the routing text set in memory only (files on disk are
// never modified) and sent in its original transfer syntax (no re-encoding of pixel data).
//
// Presentation contexts are proposed per SOP class and transfer syntax found in the files (one
// transfer syntax per context, so the receiver cannot pick another), plus one uncompressed
// context per SOP class as a fallback. A file whose own syntax was not accepted is converted only
// when that is lossless (uncompressed <-> uncompressed, deflated, or a lossless compression DCMTK
// can decode: RLE, JPEG lossless, JPEG-LS lossless); otherwise it is reported as failed.
//
// DICOM has no notion of "session created": verify through the REST API (Client::session) after
// XNAT's idle interval has passed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xnat/xnat.hpp"

namespace p2x::xnat {

struct DicomPushTarget {
  std::string ae_title, host;  // XNAT's receiver (called AE title) and where it listens
  std::uint16_t port = 8104;
  std::string our_ae;          // calling AE title
  int connect_s = 10;          // TCP connect (DCMTK keeps this process-wide; set per push)
  int acse_s = 30;             // association negotiation and release
  int dimse_s = 60;            // sending one instance and waiting for its C-STORE response
};

struct DicomPushResult {
  int sent = 0;     // instances the receiver acknowledged (success or warning status)
  int failed = 0;   // files not sent or refused by the receiver
  std::vector<std::string> failures;  // "file: reason" for each failed file
};

// Sends every regular *.dcm file under study_dir (recursively, hidden files skipped, in path
// order) with PatientComments "Project: <project> Subject: <subject> Session: <session>".
// Per-file problems (unreadable file, no acceptable presentation context, lossy conversion
// needed, failure status from the receiver) are counted in the result; the rest is still sent.
// Throws:
//  - XnatError(BadRequest) for a label that XNAT's routing rule cannot carry (must match
//    [A-Za-z0-9_-]+), when the receiver rejects the association permanently (e.g. unknown
//    called AE title) or accepts none of the proposed presentation contexts;
//  - XnatError(Transient) for connect failures, transient rejections, timeouts and a connection
//    lost during the transfer (the caller re-sends the whole study);
//  - std::runtime_error when study_dir is not a directory or DCMTK's data dictionary is missing.
// No files: returns an empty result without connecting.
// Sets TCP_NODELAY=1 in the process environment on first use (see dicom_push.cpp).
DicomPushResult push_dicom(const DicomPushTarget& target, const std::string& study_dir,
                           const std::string& project, const std::string& subject,
                           const std::string& session);

// The routing text for Patient Comments (exposed for tests and logs).
std::string routing_comment(const std::string& project, const std::string& subject,
                            const std::string& session);

}  // namespace p2x::xnat
