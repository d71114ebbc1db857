// xnat: client for the XNAT REST API over HTTP or HTTPS (Boost.Beast + OpenSSL).
//
// What it does: reads the credentials file, logs in (Basic auth on POST /data/JSESSION, then the
// JSESSIONID cookie, renewed once on a 401), checks that a project exists and reads the project
// settings the site SOP requires (anonymisation script, prearchive code), lists sessions and a
// session's scans with per-scan file counts in the archive or the prearchive (for verification),
// and uploads one study as a zip to the import service (a STORED zip streamed into the request
// body with its CRCs computed first; no temp file, memory use does not grow with study size).
//
// Errors are XnatError with a kind that says whether a retry may help (transient()) and a
// message carrying XNAT's own reason. Passwords never appear in any message. An answer that
// cannot be read (garbage, an HTML page where JSON or XML was asked for, a document nested too
// deep, a count out of range) is an error of its own kind (Unreadable, transient), never an
// empty result: no verdict is ever drawn from it.
//
// Threads: one Client may be shared by several threads. Each request takes an idle keep-alive
// connection from a small pool (or opens a new one) and uses it alone, so requests run in
// parallel; the session cookie is shared and a 401 seen by several threads at once causes one
// re-login only. Uploads always use a fresh connection and are never repeated automatically
// (except once after a 401), so the caller decides whether to push again.
// Every network operation has a deadline (Settings::timeout_s; uploads get extra time in
// proportion to their size).
//
// The alternative push method, C-STORE to XNAT's DICOM receiver, is pacs::Client::send_study;
// this module gives it the routing text (routing_comment). DICOM has no notion of "session
// created": verify through the REST API (Client::session) after XNAT's idle interval.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace p2x::metrics {
class Recorder;
}

namespace p2x::xnat {

struct Credentials {
  std::string user, password;
};

// Reads "user:password" (first line) or JSON {"user": .., "password": ..}. Throws
// std::runtime_error when the file is missing, not a regular file, readable or writable by group
// or others ("... has mode 0644; run chmod 600 ..."), or malformed. Never quotes the file's
// contents in a message.
Credentials read_credentials(const std::string& path);

struct Settings {
  std::string url;          // http[s]://host[:port][/prefix], e.g. https://xnat.example.org/xnat
  bool verify_tls = true;   // false: accept any certificate (explicit opt-out, log a warning)
  std::string ca_file;      // PEM bundle to trust instead of the system store ("" = system)
  int timeout_s = 60;       // deadline of each network operation
  bool prearchive = false;  // import into the prearchive instead of the archive
  // Uploads: the write and the wait for XNAT's answer each get timeout_s plus
  // size / upload_min_bytes_per_s seconds.
  std::int64_t upload_min_bytes_per_s = 1 << 20;
  std::string user_agent = "pacs2xnat/0.1";
  // Told of every request's kind, latency and status (/metrics); not owned, may be null.
  metrics::Recorder* recorder = nullptr;
};

enum class ErrorKind {
  Transient,   // connect failure, timeout, dropped connection, 5xx: retry later
  Auth,        // 401 after one re-login, or login refused
  Forbidden,   // 403
  NotFound,    // 404
  Conflict,    // 409 (e.g. session already exists)
  BadRequest,  // 400 (e.g. unreadable DICOM, "Failed to archive N of M session(s)")
  Other4xx,    // any other 4xx
  Tls,         // certificate not trusted / host name mismatch (configuration problem)
  Misrouted,   // import answered 200 but the data landed in the prearchive or "Unassigned"
  Protocol,    // an answer of another shape than asked for (a redirect; an older XNAT's
               // listing that the client then asks for differently)
  Unreadable   // a 2xx answer whose body cannot be read: not JSON or XML, the wrong shape,
               // nested too deep, a count that is no bounded non-negative integer. Never taken
               // as "nothing there": retry later, like a 5xx (XNAT or a proxy misbehaving)
};
const char* to_string(ErrorKind k);

struct XnatError : std::runtime_error {
  XnatError(ErrorKind k, int status, const std::string& message)
      : std::runtime_error(message), kind(k), http_status(status) {}
  ErrorKind kind;
  int http_status;  // 0 when no HTTP answer was received
  bool transient() const noexcept {
    return kind == ErrorKind::Transient || kind == ErrorKind::Unreadable;
  }
};

// A study file differed from what validation accepted while it was being sent: the upload was
// abandoned before that file was complete (nothing of it imported). Transient: the file must
// be retrieved from the PACS and validated again, never sent as it is.
struct StudyFileChanged : XnatError {
  StudyFileChanged(std::string file, const std::string& message)
      : XnatError(ErrorKind::Transient, 0, message), path(std::move(file)) {}
  std::string path;
};

struct ScanInfo {
  std::string id, series_uid, description, type;
  std::int64_t files = 0;  // files in the scan's DICOM resources: "DICOM" + "secondary"
  std::int64_t bytes = 0;
};

struct SessionInfo {
  std::string id, label, subject_label, study_uid;
  std::vector<ScanInfo> scans;
};

// A yes/no setting of XNAT's, or no answer (an older XNAT without the endpoint, or an account
// without the rights to read it: 403/404/other 4xx).
enum class Answer { Yes, No, Unanswered };

// Whether an anonymisation script is enabled for the project and for the site.
struct AnonymisationSettings {
  Answer project = Answer::Unanswered, site = Answer::Unanswered;
  std::string project_note, site_note;  // for Unanswered: what XNAT said ("HTTP 404 ...")
};

// One file of a study to upload, as validation accepted it: the upload checks the bytes it sends
// against this size and CRC-32 and aborts before the file's last byte if they differ.
struct StudyFile {
  std::string path;  // where to read it
  std::string name;  // its name in the zip
  std::uint64_t size = 0;
  std::uint32_t crc = 0;  // CRC-32 (zlib) of the whole file
};

// How an import merges into what XNAT already holds.
struct ImportOptions {
  bool append = false;             // overwrite=append: merge into an existing session
  bool overwrite_files = false;    // overwrite_files=true: files XNAT holds may be replaced
  std::optional<bool> prearchive;  // dest=/prearchive; by default Settings::prearchive
};

struct SessionSummary {
  std::string id, label, subject_label, study_uid;
};

// The routing text XNAT's DICOM receiver files instances by when it stands in Patient Comments
// (0010,4000): "Project: <project> Subject: <subject> Session: <session>". Throws
// XnatError(BadRequest) for a label the rule cannot carry (it must match [A-Za-z0-9_-]+).
std::string routing_comment(const std::string& project, const std::string& subject,
                            const std::string& session);

class Client {
 public:
  // Throws std::invalid_argument for a malformed URL. No network traffic until the first call.
  Client(Settings settings, Credentials credentials);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // POST /data/JSESSION with Basic auth; keeps the JSESSIONID for later requests.
  // Called implicitly by every verb when there is no session yet.
  void login();
  // DELETE /data/JSESSION (best effort; never throws).
  void logout() noexcept;

  // GET /data/projects/P: true if it exists and is visible; 404 -> false; 403 -> XnatError.
  bool project_exists(const std::string& project);
  // Experiments of the project (ID, label, subject label, StudyInstanceUID).
  std::vector<SessionSummary> sessions(const std::string& project);
  // The session with this label (exact match) and its scans with file counts; nullopt if absent.
  std::optional<SessionInfo> session(const std::string& project, const std::string& label);

  // The project's own session with this label (exact match) in the prearchive: the scans of
  // its entries whose tag is study_uid (any when empty) and whose status is READY, files per
  // series the highest any entry holds. nullopt when no such entry exists.
  std::optional<SessionInfo> prearchive_session(const std::string& project,
                                                const std::string& label,
                                                const std::string& study_uid);

  // GET /xapi/anonymize/projects/P/enabled and /xapi/anonymize/site/enabled. A 4xx answer is
  // Unanswered (with its status in the note); 5xx, timeouts, 401 and a 2xx answer other than
  // true/false (Unreadable) throw XnatError.
  AnonymisationSettings anonymisation(const std::string& project);
  // GET /data/projects/P/prearchive_code: 0 = review in the prearchive, 4/5 = auto-archive.
  // nullopt when XNAT does not answer it (4xx; the reason in *note); 5xx and a 2xx answer that
  // is not a number (Unreadable) throw.
  std::optional<int> prearchive_code(const std::string& project, std::string* note = nullptr);

  // POSTs every regular file under study_dir as one zip (stored, not deflated, streamed into
  // the body: no temp file) to the import service (DICOM-zip, inbody) with the given labels,
  // into the archive (or the prearchive when `prearchive`, by default Settings::prearchive).
  // append=true merges into an existing session. Returns the URI XNAT reports for the session.
  // A study file that changes between the CRC pass and its send aborts the request before the
  // body is complete (XnatError Transient, "changed after its CRC was computed");
  // std::runtime_error when study_dir is missing, empty or unreadable.
  std::string import_study(const std::string& project, const std::string& subject,
                           const std::string& session, const std::string& study_dir,
                           bool append = false, std::optional<bool> prearchive = std::nullopt);
  // The same for a list of files whose sizes and CRCs are known (the validated list): no CRC
  // pass before the request; each file is checked as it is sent, and one that differs aborts
  // the request before its last byte (XnatError Transient, "changed since it was validated").
  // std::runtime_error when `files` is empty or a file is missing.
  std::string import_files(const std::string& project, const std::string& subject,
                           const std::string& session, const std::vector<StudyFile>& files,
                           const ImportOptions& options);

  // Diagnostics (and tests).
  std::int64_t requests_made() const noexcept;  // HTTP requests sent, logins included
  std::int64_t logins_made() const noexcept;
  std::int64_t connections_opened() const noexcept;

  struct Impl;  // defined in client.cpp (public only so its helpers there can name it)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2x::xnat
