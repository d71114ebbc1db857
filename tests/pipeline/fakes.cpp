// Fakes of the pipeline's seams (see fakes.hpp).
#include "fakes.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace p2x::test {

namespace fs = std::filesystem;

namespace {

// The C-FIND answer for one study, with what this PACS reports.
pacs::StudyMatch match_of(const FakePacs& pacs, const GeneratedStudy& s) {
  pacs::StudyMatch m;
  m.study_uid = s.study_uid;
  m.patient_id = s.spec.patient_id;
  m.study_date = s.spec.study_date;
  m.accession = s.spec.accession;
  for (const auto& se : s.series) {
    if (pacs.study_modalities &&
        std::find(m.modalities.begin(), m.modalities.end(), se.modality) == m.modalities.end()) {
      m.modalities.push_back(se.modality);
    }
    for (const auto& f : se.files) {
      if (pacs.study_sop_classes && std::find(m.sop_classes.begin(), m.sop_classes.end(),
                                              f.sop_class) == m.sop_classes.end()) {
        m.sop_classes.push_back(f.sop_class);
      }
    }
  }
  return m;
}

class FakeRetrieval : public pacs::IRetrieval {
 public:
  FakeRetrieval(FakePacs& pacs, pacs::RetrieveMethod method) : pacs_(pacs), method_(method) {}

  std::vector<pacs::StudyMatch> find_studies(const pacs::Query& q) override {
    std::vector<const GeneratedStudy*> found;
    if (!q.study_uid.empty()) {
      found.push_back(pacs_.by_uid(q.study_uid));
    } else if (!q.accession.empty()) {
      found.push_back(pacs_.by_accession(q.accession));
    } else {
      found = pacs_.by_patient_date(q.patient_id, q.study_date);
    }
    std::vector<pacs::StudyMatch> out;
    for (const auto* s : found) {
      if (s) out.push_back(match_of(pacs_, *s));
    }
    return out;
  }

  std::vector<pacs::SeriesInfo> find_series(const std::string& study_uid) override {
    ++pacs_.series_finds;
    std::vector<pacs::SeriesInfo> out;
    if (const GeneratedStudy* s = pacs_.by_uid(study_uid)) {
      for (const auto& se : s->series) {
        const int short_by = &se == &s->series.front() ? pacs_.undercount : 0;
        out.push_back({se.uid, se.modality, pacs_.series_descriptions ? se.description : "",
                       se.number, static_cast<int>(se.files.size()) - short_by});
      }
    }
    return out;
  }

  std::vector<pacs::InstanceInfo> find_instances(const std::string& study_uid,
                                                 const std::string& series_uid) override {
    std::vector<pacs::InstanceInfo> out;
    for (const auto* f : pacs_.selected({study_uid, {series_uid}, {}})) {
      out.push_back({f->sop_uid, pacs_.instance_sop_classes ? f->sop_class : ""});
    }
    return out;
  }

  pacs::RetrieveResult fetch(const std::vector<pacs::Selection>& sels, const std::string& dir,
                             const pacs::AbortFn& should_abort) override {
    pacs_.record(sels);
    ++pacs_.fetches;
    if (method_ == pacs::RetrieveMethod::Get) refuse_unacceptable(sels);
    std::vector<const GeneratedFile*> files;
    pacs::RetrieveResult r;
    for (const auto& sel : sels) {
      for (const auto* f : pacs_.selected(sel)) {
        if (method_ == pacs::RetrieveMethod::Get && !negotiated(sel, f->sop_class)) {
          ++r.failed;  // "No presentation context for ..."
        } else {
          files.push_back(f);
        }
      }
    }
    if (pacs_.withhold > 0)
      files.resize(files.size() - std::min<std::size_t>(files.size(), pacs_.withhold));
    if (pacs_.during_fetch) pacs_.during_fetch();
    if (pacs_.receiver_busy_for > 0) {
      if (pacs_.receiver_busy_for-- % 2 == 1)
        throw pacs::PacsError(pacs::ErrorKind::ReceiverBusy,
                              "C-MOVE on FAKE failed: 0xC000; our Storage SCP had no free slot",
                              true);
      r.failed = static_cast<int>(files.size());
      r.receiver_busy = 1;
      return r;
    }
    for (const auto& extra : pacs_.also_deliver)
      fs::copy_file(extra, fs::path(dir) / fs::path(extra).filename(),
                    fs::copy_options::overwrite_existing);
    for (const auto* f : files) {
      if (should_abort && should_abort()) {
        throw pacs::PacsError(pacs::ErrorKind::Aborted, "C-MOVE aborted", true);
      }
      if (pacs_.drop_after_files >= 0 && r.received >= pacs_.drop_after_files) {
        throw pacs::PacsError(pacs::ErrorKind::Protocol,
                              "C-MOVE on FAKE: peer aborted the association", true);
      }
      const fs::path dest = fs::path(dir) / (f->sop_uid + ".dcm");
      if (pacs_.garbage) {
        std::ofstream(dest) << "this is not a DICOM file";
      } else {
        fs::copy_file(f->path, dest, fs::copy_options::overwrite_existing);
      }
      ++r.completed;
      ++r.received;
    }
    return r;
  }

  void close() override {}

 private:
  // C-GET: a class a selection names that this PACS accepts no context for fails the fetch.
  void refuse_unacceptable(const std::vector<pacs::Selection>& sels) const {
    std::string refused;
    for (const auto& sel : sels) {
      for (const auto& c : sel.sop_classes) {
        if (pacs_.refused_classes.count(c)) refused += (refused.empty() ? "" : ", ") + c;
      }
    }
    if (!refused.empty()) {
      throw pacs::PacsError(pacs::ErrorKind::Rejected,
                            "C-GET FAKE: cannot retrieve by C-GET the SOP class(es) " + refused,
                            false);
    }
  }

  // Whether the C-GET association has a context for the class (the selection's classes, or
  // the built-in list: everything but the refused classes).
  bool negotiated(const pacs::Selection& sel, const std::string& sop_class) const {
    if (sel.sop_classes.empty()) return !pacs_.refused_classes.count(sop_class);
    return std::find(sel.sop_classes.begin(), sel.sop_classes.end(), sop_class) !=
           sel.sop_classes.end();
  }

  FakePacs& pacs_;
  pacs::RetrieveMethod method_;
};

}  // namespace

std::unique_ptr<pacs::IRetrieval> FakePacs::open(const pacs::Peer&, pacs::RetrieveMethod m) {
  ++opens;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_for > 0) {
      --down_for;
      throw pacs::PacsError(pacs::ErrorKind::Connect, "connection refused by FAKE@127.0.0.1", true);
    }
  }
  return std::make_unique<FakeRetrieval>(*this, m);
}

void FakePacs::echo(const pacs::Peer&) {
  ++echoes;
  std::lock_guard<std::mutex> lock(mu_);
  if (down_for > 0) throw pacs::PacsError(pacs::ErrorKind::Connect, "connection refused", true);
}

const GeneratedStudy* FakePacs::by_accession(const std::string& acc) const {
  for (const auto& s : studies_)
    if (s.spec.accession == acc) return &s;
  return nullptr;
}

const GeneratedStudy* FakePacs::by_uid(const std::string& uid) const {
  for (const auto& s : studies_)
    if (s.study_uid == uid) return &s;
  return nullptr;
}

std::vector<const GeneratedStudy*> FakePacs::by_patient_date(const std::string& patient_id,
                                                             const std::string& date) const {
  std::vector<const GeneratedStudy*> out;
  for (const auto& s : studies_) {
    if (s.spec.patient_id == patient_id && (!match_study_date || s.spec.study_date == date)) {
      out.push_back(&s);
    }
  }
  return out;
}

std::vector<const GeneratedFile*> FakePacs::selected(const pacs::Selection& sel) const {
  std::vector<const GeneratedFile*> out;
  const GeneratedStudy* s = by_uid(sel.study_uid);
  if (!s) return out;
  for (const auto& se : s->series) {
    if (!sel.series_uids.empty() && std::find(sel.series_uids.begin(), sel.series_uids.end(),
                                              se.uid) == sel.series_uids.end()) {
      continue;
    }
    for (const auto& f : se.files) {
      if (sel.sop_uids.empty() ||
          std::find(sel.sop_uids.begin(), sel.sop_uids.end(), f.sop_uid) != sel.sop_uids.end()) {
        out.push_back(&f);
      }
    }
  }
  return out;
}

void FakePacs::record(const std::vector<pacs::Selection>& sels) {
  std::lock_guard<std::mutex> lock(mu_);
  last_ = sels;
}

std::vector<pacs::Selection> FakePacs::last_selections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

FakeArchive::FakeArchive(const std::vector<GeneratedStudy>& studies) {
  for (const auto& s : studies) {
    for (const auto& se : s.series) {
      for (const auto& f : se.files) {
        series_of_sop_[f.sop_uid] = se.uid;
        study_of_sop_[f.sop_uid] = s.study_uid;
      }
    }
  }
}

namespace {
// What XNAT down looks like to a client: transient, no HTTP status.
void settings_error(int& errors) {
  if (errors <= 0) return;
  --errors;
  throw xnat::XnatError(xnat::ErrorKind::Transient, 0, "connection refused by FAKE XNAT");
}
}  // namespace

bool FakeArchive::project_exists(const std::string& project) {
  std::lock_guard<std::mutex> lock(mu_);
  settings_error(settings_errors);
  return missing_projects.count(project) == 0;
}

std::vector<xnat::SessionSummary> FakeArchive::sessions(const std::string&) {
  std::lock_guard<std::mutex> lock(mu_);
  settings_error(settings_errors);
  std::map<std::string, std::string> all = existing_sessions;
  for (const auto& [label, held] : sessions_) {
    if (!held.sops_by_series.empty()) all[label] = held.subject;
  }
  std::vector<xnat::SessionSummary> out;
  for (const auto& [label, subject] : all) out.push_back({"", label, subject, ""});
  return out;
}

std::optional<xnat::SessionInfo> FakeArchive::prearchive_session(const std::string&,
                                                                 const std::string&,
                                                                 const std::string&) {
  return std::nullopt;
}

xnat::AnonymisationSettings FakeArchive::anonymisation(const std::string&) {
  std::lock_guard<std::mutex> lock(mu_);
  settings_error(settings_errors);
  return anonymisation_answer;
}

std::optional<int> FakeArchive::prearchive_code(const std::string&, std::string* note) {
  std::lock_guard<std::mutex> lock(mu_);
  settings_error(settings_errors);
  if (!prearchive_answer && note) *note = "HTTP 404 from FAKE XNAT";
  return prearchive_answer;
}

std::optional<xnat::SessionInfo> FakeArchive::session(const std::string&,
                                                      const std::string& label) {
  std::lock_guard<std::mutex> lock(mu_);
  if (query_errors > 0) {
    --query_errors;
    throw std::runtime_error("disk I/O error");
  }
  Held& h = sessions_[label];
  ++h.queries;
  ++h.queries_after_upload;
  if (h.sops_by_series.empty()) return std::nullopt;
  xnat::SessionInfo info;
  info.label = label;
  info.subject_label = h.subject;
  info.study_uid = h.study_uid;
  for (const auto& [series, sops] : h.sops_by_series) {
    xnat::ScanInfo scan;
    scan.series_uid = series;
    scan.files = static_cast<std::int64_t>(sops.size());
    info.scans.push_back(scan);
  }
  return info;
}

void FakeArchive::store_files(const xnat::Upload& u, Held& h) {
  h.subject = u.subject;
  for (const auto& f : u.files) {
    const fs::path path(f.path);
    if (path.extension() != ".dcm") continue;
    const std::string sop = path.stem().string();
    h.study_uid = study_of_sop_[sop];
    h.sops_by_series[series_of_sop_[sop]].insert(sop);
  }
  if (keep_fewer > 0 && !h.sops_by_series.empty()) {
    auto& first = h.sops_by_series.begin()->second;
    for (int i = 0; i < keep_fewer && !first.empty(); ++i) first.erase(first.begin());
  }
}

std::string FakeArchive::upload(const xnat::Upload& u) {
  ++uploads;
  if (during_upload) during_upload();
  std::lock_guard<std::mutex> lock(mu_);
  if (refuse_credentials > 0) {
    --refuse_credentials;
    throw xnat::XnatError(xnat::ErrorKind::Auth, 401,
                          "401 Unauthorized: login refused for user test");
  }
  if (drop_body > 0) {
    --drop_body;
    throw xnat::XnatError(xnat::ErrorKind::Transient, 0, "connection lost while sending the study");
  }
  Held& h = sessions_[u.session];
  store_files(u, h);
  h.queries_after_upload = 0;
  if (fail_after_store > 0) {
    --fail_after_store;
    throw xnat::XnatError(xnat::ErrorKind::Transient, 500, "500 Internal Server Error");
  }
  return "/data/projects/" + u.project + "/subjects/" + u.subject + "/experiments/" + u.session;
}

int FakeArchive::session_queries(const std::string& label) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(label);
  return it == sessions_.end() ? 0 : it->second.queries;
}

int FakeArchive::queries_after_upload(const std::string& label) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(label);
  return it == sessions_.end() ? 0 : it->second.queries_after_upload;
}

int FakeArchive::files_held(const std::string& label) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(label);
  if (it == sessions_.end()) return 0;
  int n = 0;
  for (const auto& [series, sops] : it->second.sops_by_series) n += static_cast<int>(sops.size());
  return n;
}

}  // namespace p2x::test
