// xnat/archive: the seam between the pipeline and XNAT — what the pipeline needs of XNAT for one
// study: is the project there, what does XNAT hold under a session label, and one upload.
//
// RestArchive is the real thing over the REST API (xnat::Client, zip to the import service).
// The DICOM-receiver push lives in pipeline/ (it needs both pacs/ and xnat/). Tests of the
// pipeline's state logic substitute fakes (an XNAT that answers 500 after storing, refuses
// credentials, drops a body, holds fewer files than sent).
#pragma once

#include <optional>
#include <string>

#include "xnat/xnat.hpp"

namespace p2x::xnat {

struct Upload {
  std::string project, subject, session, study_dir;
  bool append = false;  // merge into an existing session
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
  std::string upload(const Upload& u) override {
    return client_.import_study(u.project, u.subject, u.session, u.study_dir, u.append);
  }

 private:
  Client& client_;
};

}  // namespace p2x::xnat
