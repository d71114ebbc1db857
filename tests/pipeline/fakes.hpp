// Fakes of the pipeline's two seams, for fast tests of its state logic (steps_test.cpp,
// find_classes_test.cpp): FakePacs serves generated studies from memory and files (C-FIND
// answers, "retrievals" that copy files into the spool) and can drop the association mid-move,
// deliver fewer instances than it reported, deliver unreadable files, or be down for N calls;
// like a real PACS it may report less in C-FIND (no SOP classes, no ModalitiesInStudy, no
// series descriptions) and, by C-GET, delivers only instances of the SOP classes a selection
// names (the others fail as sub-operations) and refuses classes it will not send. FakeArchive is an
// XNAT that keeps per session the files it was sent and can answer 500 after storing, refuse the
// credentials, drop a body, or keep fewer files than sent; its project may be missing, lack an
// anonymisation script or a prearchive setting, or hold sessions already (the pre-flight's
// questions). Both count what they were asked.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pacs/retrieval.hpp"
#include "testdata.hpp"
#include "xnat/archive.hpp"

namespace p2x::test {

class FakePacs : public pacs::IPacs {
 public:
  explicit FakePacs(std::vector<GeneratedStudy> studies) : studies_(std::move(studies)) {}

  // Faults (set before or between steps).
  int down_for = 0;           // the next N open() calls fail to connect
  int drop_after_files = -1;  // >= 0: each fetch delivers at most this many files, then
                              // the association drops (PacsError Protocol, transient)
  int withhold = 0;           // each fetch leaves out this many instances (silently)
  bool garbage = false;       // files delivered are not DICOM
  // The next N fetches find our Storage SCP full: odd ones fail as Orthanc's does (0xC000,
  // PacsError ReceiverBusy), even ones as dcmqrscp's (failed sub-operations, receiver_busy).
  int receiver_busy_for = 0;
  std::function<void()> during_fetch;  // called inside fetch (e.g. to pause the job)
  // C-FIND's count of the first series is this many short of what the PACS holds, lists at
  // IMAGE level and delivers (the series grew between the C-FINDs and the C-MOVE).
  int undercount = 0;
  // Files every fetch also puts into the spool (under their own names): instances stored into
  // the retrieval under the PACS's AE title that its C-FINDs never list (a spoofed C-STORE).
  std::vector<std::string> also_deliver;

  // What C-FIND reports (a real PACS may ignore keys or not return them).
  bool study_sop_classes = true;     // SOP Classes in Study at STUDY level
  bool instance_sop_classes = true;  // SOPClassUID at IMAGE level
  bool study_modalities = true;      // ModalitiesInStudy (false: as dcmqrscp, none)
  bool series_descriptions = true;   // SeriesDescription at SERIES level
  bool match_study_date = true;      // false: a patient + date query answers every date
  // C-GET: SOP classes this PACS accepts no storage context for. Asked for by a selection: the
  // fetch throws PacsError(Rejected) naming them, as pacs::Client::get does; not asked for
  // (none named: its built-in list): their instances fail as sub-operations.
  std::set<std::string> refused_classes;

  // Counters.
  std::atomic<int> opens{0}, fetches{0}, echoes{0}, series_finds{0};
  std::vector<pacs::Selection> last_selections() const;

  std::unique_ptr<pacs::IRetrieval> open(const pacs::Peer& peer, pacs::RetrieveMethod m) override;
  void echo(const pacs::Peer& peer) override;

  const GeneratedStudy* by_accession(const std::string& acc) const;
  const GeneratedStudy* by_uid(const std::string& uid) const;
  // Every study of the patient on the date (on any date unless match_study_date): what a PACS
  // answers without matching modality.
  std::vector<const GeneratedStudy*> by_patient_date(const std::string& patient_id,
                                                     const std::string& date) const;
  // Files of the study that the selection names.
  std::vector<const GeneratedFile*> selected(const pacs::Selection& sel) const;
  void record(const std::vector<pacs::Selection>& sels);

 private:
  std::vector<GeneratedStudy> studies_;
  mutable std::mutex mu_;
  std::vector<pacs::Selection> last_;
};

class FakeArchive : public xnat::IArchive {
 public:
  explicit FakeArchive(const std::vector<GeneratedStudy>& studies);

  // Faults.
  int fail_after_store = 0;    // the next N uploads store, then answer 500
  int drop_body = 0;           // the next N uploads lose the connection before storing
  int refuse_credentials = 0;  // the next N uploads answer 401 (after re-login)
  int keep_fewer = 0;          // each upload keeps this many files fewer of the first series
  int query_errors = 0;        // the next N session queries throw a non-XNAT error
  std::function<void()> during_upload;  // called inside upload (e.g. to cancel the job)

  // The project and its settings (a typical site unless a test changes them).
  std::set<std::string> missing_projects;  // projects this XNAT does not have
  xnat::AnonymisationSettings anonymisation_answer{
      xnat::Answer::Unanswered, xnat::Answer::Yes, {}, {}};
  std::optional<int> prearchive_answer = 4;  // nullopt: XNAT does not say
  int settings_errors = 0;  // the next N project or settings requests fail as XNAT down does
  // Sessions the project held before anything was uploaded: label -> subject label.
  std::map<std::string, std::string> existing_sessions;
  xnat::VerifyPolicy policy = xnat::VerifyPolicy::rest_import();

  // Counters.
  std::atomic<int> uploads{0};
  int session_queries(const std::string& label) const;
  int files_held(const std::string& label) const;
  // Session queries for `label` after its last upload (verification requests).
  int queries_after_upload(const std::string& label) const;

  bool project_exists(const std::string& project) override;
  std::vector<xnat::SessionSummary> sessions(const std::string& project) override;
  std::optional<xnat::SessionInfo> session(const std::string& project,
                                           const std::string& label) override;
  std::string upload(const xnat::Upload& u) override;
  // This XNAT has no prearchive entries (it archives every upload): always nullopt.
  std::optional<xnat::SessionInfo> prearchive_session(const std::string& project,
                                                      const std::string& label,
                                                      const std::string& study_uid) override;
  xnat::AnonymisationSettings anonymisation(const std::string& project) override;
  std::optional<int> prearchive_code(const std::string& project, std::string* note) override;
  xnat::VerifyPolicy verify_policy() const override { return policy; }

 private:
  struct Held {
    std::string study_uid, subject;
    std::map<std::string, std::set<std::string>> sops_by_series;
    int queries = 0, queries_after_upload = 0;
  };
  void store_files(const xnat::Upload& u, Held& h);
  std::map<std::string, std::string> series_of_sop_, study_of_sop_;
  mutable std::mutex mu_;
  std::map<std::string, Held> sessions_;
};

}  // namespace p2x::test
