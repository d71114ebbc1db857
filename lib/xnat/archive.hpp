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


class IArchive {
 public:
  virtual ~IArchive() = default;
  // Throws XnatError (403 and the like); false when the project does not exist.
  virtual bool project_exists(const std::string& project) = 0;
  // The session with this label and its scans with file counts; nullopt if absent.
  virtual std::optional<SessionInfo> session(const std::string& project,
                                             const std::string& label) = 0;
  // Sends every file of the study; returns where it went, for the item's events. Throws
  // XnatError (transient() says whether sending again may help).
  virtual std::string upload(const Upload& upload) = 0;
  // The session as it waits in the project's prearchive (entries of this label and study);
  // nullopt if none. An archive without a prearchive answers nullopt.
  virtual std::optional<SessionInfo> prearchive_session(const std::string& /*project*/,
                                                        const std::string& /*label*/,
                                                        const std::string& /*study_uid*/) {
    return std::nullopt;
  }
  // The project settings the site procedure requires (see project_checks.hpp). The defaults
  // are a typical site (a site-wide script, auto-archive) for archives that cannot ask.
  virtual AnonymisationSettings anonymisation(const std::string& /*project*/) {
    return {Answer::Unanswered, Answer::Yes, {}, {}};
  }
  virtual std::optional<int> prearchive_code(const std::string& /*project*/,
                                             std::string* /*note*/) {
    return 4;
  }
  // True when a session shows up only some time after its upload (XNAT's DICOM receiver builds
  // it after the study has been idle for minutes): verification waits longer.
  virtual bool builds_sessions_later() const { return false; }
};

// Upload = Client::import_study (one zip to the import service).
class RestArchive : public IArchive {
 public:
  explicit RestArchive(Client& client) : client_(client) {}
  bool project_exists(const std::string& project) override {
    return client_.project_exists(project);
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

 private:
  Client& client_;
};

}  // namespace p2x::xnat
