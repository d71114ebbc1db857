// pipeline/archives: make_archive and the DICOM-receiver archive.
#include "pipeline/archives.hpp"

#include "pacs/pacs.hpp"

namespace p2x::pipeline {

namespace {

// XNAT's DICOM receiver routes by the comment "Project: P Subject: S Session: E" and merges
// instances it already holds, so a re-send after an unknown outcome is safe. It builds the
// session only after the study has been idle for its configured interval.
class DicomReceiverArchive : public xnat::IArchive {
 public:
  DicomReceiverArchive(const config::Config& cfg, xnat::Client& client) : rest_(client) {
    target_.ae_title = cfg.xnat.dicom_ae;
    target_.host = cfg.xnat.dicom_host;
    target_.port = cfg.xnat.dicom_port;
    target_.our_ae = cfg.ae_title;
  }
  bool project_exists(const std::string& project) override { return rest_.project_exists(project); }
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
    pacs::SendOptions opt;
    opt.patient_comments = xnat::routing_comment(u.project, u.subject, u.session);
    pacs::SendResult r;
    try {
      r = pacs::Client(target_).send_study(u.study_dir, opt);
    } catch (const pacs::PacsError& e) {
      throw xnat::XnatError(e.transient() ? xnat::ErrorKind::Transient : xnat::ErrorKind::BadRequest,
                            0, e.what());
    }
    if (r.failed > 0) {
      std::string why;
      for (std::size_t i = 0; i < r.failures.size() && i < 3; ++i) why += (i ? "; " : "") + r.failures[i];
      throw xnat::XnatError(xnat::ErrorKind::BadRequest, 0,
                            "XNAT's DICOM receiver refused " + std::to_string(r.failed) + " of " +
                                std::to_string(r.failed + r.sent) + " instance(s): " + why);
    }
    return "DICOM receiver " + target_.ae_title + "@" + target_.host + ":" + std::to_string(target_.port);
  }
  bool builds_sessions_later() const override { return true; }

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
