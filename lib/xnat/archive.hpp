// xnat/archive: the seam between the pipeline and XNAT — what the pipeline needs of XNAT for one
// study: is the project there and set up as the site requires (anonymisation, prearchive), what
// does XNAT hold under a session label (archive or prearchive), and one upload.
//
// RestArchive is the real thing over the REST API (xnat::Client, zip to the import service).
// The DICOM-receiver push lives in pipeline/ (it needs both pacs/ and xnat/). Tests of the
// pipeline's state logic substitute fakes (an XNAT that answers 500 after storing, refuses
// credentials, drops a body, holds fewer files than sent).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xnat/xnat.hpp"

namespace p2x::xnat {

struct Upload {
  std::string project, subject, session;
  // The files to send: the validated ones (all of the study, or the series XNAT lacks), each
  // checked against its validated size and CRC as it is sent.
  std::vector<StudyFile> files;
  bool append = false;           // merge into an existing session
  bool overwrite_files = false;  // XNAT may replace files the session already holds
  bool prearchive = false;       // dest=/prearchive (the project reviews sessions there)
};

// How verification waits for XNAT to show an upload: the archive says, verification obeys.
struct VerifyPolicy {
  // Checks that find the study incomplete before it is pushed again (once).
  int checks_before_repush = 4;
  // Seconds before the next check: this many when > 0, else 2 x the checks made so far.
  int check_interval_s = 0;
  // The session appears only after the receiver has seen the study idle for a while (XNAT's
  // DICOM receiver), and a study sent in bursts further apart than that becomes several
  // sessions (part archived, the rest in the prearchive).
  bool session_after_idle = false;

  int wait_after(int checks) const { return check_interval_s > 0 ? check_interval_s : 2 * checks; }

  // The REST import: XNAT answers once the session is built; seconds suffice.
  static VerifyPolicy rest_import() { return {4, 0, false}; }
  // XNAT's DICOM receiver builds the session after its idle interval (5 minutes by default):
  // 40 checks 30 s apart (20 minutes) before pushing again.
  static VerifyPolicy dicom_receiver() { return {40, 30, true}; }
};

// Every method is the implementation's own answer (RestArchive, the DICOM-receiver archive in
// pipeline/archives.cpp, the tests' FakeArchive): no default stands in for XNAT.
class IArchive {
 public:
  virtual ~IArchive() = default;
  // Throws XnatError (403 and the like); false when the project does not exist.
  virtual bool project_exists(const std::string& project) = 0;
  // The sessions the project holds (label, subject), for the submit pre-flight. Throws XnatError.
  virtual std::vector<SessionSummary> sessions(const std::string& project) = 0;
  // The session with this label and its scans with file counts; nullopt if absent.
  virtual std::optional<SessionInfo> session(const std::string& project,
                                             const std::string& label) = 0;
  // Sends every file of the study; returns where it went, for the item's events. Throws
  // XnatError (transient() says whether sending again may help).
  virtual std::string upload(const Upload& upload) = 0;
  // The session as it waits in the project's prearchive (entries of this label and study);
  // nullopt if none.
  virtual std::optional<SessionInfo> prearchive_session(const std::string& project,
                                                        const std::string& label,
                                                        const std::string& study_uid) = 0;
  // The project settings the site procedure requires (see project_checks.hpp).
  virtual AnonymisationSettings anonymisation(const std::string& project) = 0;
  // The project's prearchive_code; nullopt (with the reason in *note) when XNAT does not say.
  virtual std::optional<int> prearchive_code(const std::string& project, std::string* note) = 0;
  // How verification waits for what this archive was sent to show up.
  virtual VerifyPolicy verify_policy() const = 0;
};

// Upload = Client::import_study (one zip to the import service).
class RestArchive : public IArchive {
 public:
  explicit RestArchive(Client& client) : client_(client) {}
  bool project_exists(const std::string& project) override {
    return client_.project_exists(project);
  }
  std::vector<SessionSummary> sessions(const std::string& project) override {
    return client_.sessions(project);
  }
  std::optional<SessionInfo> session(const std::string& project,
                                     const std::string& label) override {
    return client_.session(project, label);
  }
  std::optional<SessionInfo> prearchive_session(const std::string& project,
                                                const std::string& label,
                                                const std::string& study_uid) override {
    return client_.prearchive_session(project, label, study_uid);
  }
  AnonymisationSettings anonymisation(const std::string& project) override {
    return client_.anonymisation(project);
  }
  std::optional<int> prearchive_code(const std::string& project, std::string* note) override {
    return client_.prearchive_code(project, note);
  }
  std::string upload(const Upload& u) override {
    ImportOptions options;
    options.append = u.append;
    options.overwrite_files = u.overwrite_files;
    options.prearchive = u.prearchive;
    return client_.import_files(u.project, u.subject, u.session, u.files, options);
  }
  VerifyPolicy verify_policy() const override { return VerifyPolicy::rest_import(); }

 private:
  Client& client_;
};

}  // namespace p2x::xnat
