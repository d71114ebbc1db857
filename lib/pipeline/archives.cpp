// pipeline/archives: make_archive and the DICOM-receiver archive.
#include "pipeline/archives.hpp"

#include "pacs/pacs.hpp"

namespace p2x::pipeline {

namespace {

// XNAT's DICOM receiver routes by the comment "Project: P Subject: S Session: E" and builds the
// session only after the study has been idle for its configured interval. A later burst into a
// session XNAT has already archived is merged like any archive of a prearchive session: every
// instance XNAT already holds is a conflict (MergeSessionsA.checkForConflict) unless the
// project's prearchive code is 5, and the receiver cannot be asked to overwrite. So a push into
// a session XNAT holds part of (a re-push after verification, --append) goes through the REST
// import with overwrite_files=true instead, which XNAT does accept; a first push uses C-STORE.
class DicomReceiverArchive : public xnat::IArchive {
 public:
  DicomReceiverArchive(const config::Config& cfg, xnat::Client& client) : rest_(client) {
    target_.ae_title = cfg.xnat.dicom_ae;
    target_.host = cfg.xnat.dicom_host;
    target_.port = cfg.xnat.dicom_port;
    target_.our_ae = cfg.ae_title;
  }
  bool project_exists(const std::string& project) override { return rest_.project_exists(project); }
  std::vector<xnat::SessionSummary> sessions(const std::string& project) override {
    return rest_.sessions(project);
  }
  std::optional<xnat::SessionInfo> session(const std::string& project,
                                           const std::string& label) override {
    return rest_.session(project, label);
  }
  // The receiver files a session by the project's own prearchive setting.
  std::optional<xnat::SessionInfo> prearchive_session(const std::string& project,
                                                      const std::string& label,
                                                      const std::string& study_uid) override {
    return rest_.prearchive_session(project, label, study_uid);
  }
  xnat::AnonymisationSettings anonymisation(const std::string& project) override {
    return rest_.anonymisation(project);
  }
  std::optional<int> prearchive_code(const std::string& project, std::string* note) override {
    return rest_.prearchive_code(project, note);
  }
  std::string upload(const xnat::Upload& u) override {
    if (u.overwrite_files) return rest_.upload(u) + " (REST import: XNAT already held part of it)";
    pacs::SendOptions opt;
    opt.patient_comments = xnat::routing_comment(u.project, u.subject, u.session);
    std::vector<pacs::SendFile> files;
    for (const auto& f : u.files) files.push_back({f.path, f.size, f.crc});
    pacs::SendResult r;
    try {
      r = pacs::Client(target_).send_files(files, opt);
    } catch (const pacs::FileChanged& e) {
      throw xnat::StudyFileChanged(e.path, e.what());
    } catch (const pacs::PacsError& e) {
      throw xnat::XnatError(
          e.transient() ? xnat::ErrorKind::Transient : xnat::ErrorKind::BadRequest, 0, e.what());
    }
    if (r.failed > 0) {
      std::string why;
      for (std::size_t i = 0; i < r.failures.size() && i < 3; ++i)
        why += (i ? "; " : "") + r.failures[i];
      throw xnat::XnatError(xnat::ErrorKind::BadRequest, 0,
                            "XNAT's DICOM receiver refused " + std::to_string(r.failed) + " of " +
                                std::to_string(r.failed + r.sent) + " instance(s): " + why);
    }
    return "DICOM receiver " + target_.ae_title + "@" + target_.host + ":" +
           std::to_string(target_.port);
  }
  xnat::VerifyPolicy verify_policy() const override { return xnat::VerifyPolicy::dicom_receiver(); }

 private:
  xnat::RestArchive rest_;
  pacs::Peer target_;
};

}  // namespace

std::unique_ptr<xnat::IArchive> make_archive(const config::Config& cfg, xnat::Client& client) {
  if (cfg.xnat.push == config::PushMethod::CStore) {
    return std::make_unique<DicomReceiverArchive>(cfg, client);
  }
  return std::make_unique<xnat::RestArchive>(client);
}

}  // namespace p2x::pipeline
