// Independent C-FIND probe for tests (see dicom_probe.hpp).
#include "dicom_probe.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/scu.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace p2x::test {

int ProbeStudy::instance_count() const {
  int n = 0;
  for (const auto& s : series) n += s.instances;
  return n;
}

namespace {

std::string get(DcmItem* ds, const DcmTagKey& tag) {
  OFString v;
  if (ds && ds->findAndGetOFStringArray(tag, v).good()) return v.c_str();
  return "";
}

class Finder {
 public:
  Finder(std::uint16_t port, const std::string& called, const std::string& calling) {
    setenv("TCP_NODELAY", "1", 0);
    scu_.setAETitle(calling.c_str());
    scu_.setPeerHostName("127.0.0.1");
    scu_.setPeerPort(port);
    scu_.setPeerAETitle(called.c_str());
    scu_.setACSETimeout(10);
    scu_.setDIMSEBlockingMode(DIMSE_NONBLOCKING);
    scu_.setDIMSETimeout(60);
    OFList<OFString> ts;
    ts.push_back(UID_LittleEndianExplicitTransferSyntax);
    ts.push_back(UID_LittleEndianImplicitTransferSyntax);
    scu_.addPresentationContext(UID_FINDStudyRootQueryRetrieveInformationModel, ts);
    check(scu_.initNetwork(), "initNetwork");
    check(scu_.negotiateAssociation(), "negotiateAssociation");
    pc_ = scu_.findPresentationContextID(UID_FINDStudyRootQueryRetrieveInformationModel, "");
    if (pc_ == 0) throw std::runtime_error("probe: C-FIND study root not accepted");
  }
  ~Finder() {
    if (scu_.isConnected()) scu_.releaseAssociation();
  }
  Finder(const Finder&) = delete;
  Finder& operator=(const Finder&) = delete;

  // Returns the pending responses' identifiers (owned by the caller).
  std::vector<std::unique_ptr<DcmDataset>> find(DcmDataset& query) {
    OFList<QRResponse*> responses;
    const OFCondition cond = scu_.sendFINDRequest(pc_, &query, &responses);
    std::vector<std::unique_ptr<DcmDataset>> out;
    Uint16 final_status = 0xffff;
    for (QRResponse* r : responses) {
      if (r->m_dataset && (r->m_status == 0xff00 || r->m_status == 0xff01)) {
        out.emplace_back(r->m_dataset);
        r->m_dataset = nullptr;
      } else {
        final_status = r->m_status;
      }
      delete r;
    }
    check(cond, "C-FIND");
    if (final_status != 0)
      throw std::runtime_error("probe: C-FIND final status 0x" + hex(final_status));
    return out;
  }

 private:
  static std::string hex(Uint16 v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04x", v);
    return buf;
  }
  static void check(const OFCondition& c, const char* what) {
    if (c.bad()) throw std::runtime_error(std::string("probe: ") + what + ": " + c.text());
  }
  DcmSCU scu_;
  T_ASC_PresentationContextID pc_ = 0;
};

}  // namespace

std::vector<ProbeStudy> probe_studies(std::uint16_t port, const std::string& called_ae,
                                      const std::string& calling_ae, const std::string& accession,
                                      const std::string& patient_id,
                                      const std::string& study_date) {
  Finder f(port, called_ae, calling_ae);
  std::vector<ProbeStudy> out;
  DcmDataset q;
  q.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
  q.putAndInsertString(DCM_StudyInstanceUID, "");
  q.putAndInsertString(DCM_AccessionNumber, accession.c_str());
  q.putAndInsertString(DCM_PatientID, patient_id.c_str());
  q.putAndInsertString(DCM_StudyDate, study_date.c_str());
  for (auto& row : f.find(q)) {
    ProbeStudy st;
    st.study_uid = get(row.get(), DCM_StudyInstanceUID);
    st.accession = get(row.get(), DCM_AccessionNumber);
    st.patient_id = get(row.get(), DCM_PatientID);
    st.study_date = get(row.get(), DCM_StudyDate);
    out.push_back(std::move(st));
  }
  for (auto& st : out) {
    DcmDataset sq;
    sq.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
    sq.putAndInsertString(DCM_StudyInstanceUID, st.study_uid.c_str());
    sq.putAndInsertString(DCM_SeriesInstanceUID, "");
    sq.putAndInsertString(DCM_Modality, "");
    sq.putAndInsertString(DCM_SeriesNumber, "");
    sq.putAndInsertString(DCM_SeriesDescription, "");
    for (auto& row : f.find(sq)) {
      ProbeSeries se;
      se.uid = get(row.get(), DCM_SeriesInstanceUID);
      se.modality = get(row.get(), DCM_Modality);
      se.description = get(row.get(), DCM_SeriesDescription);
      se.number = std::atoi(get(row.get(), DCM_SeriesNumber).c_str());
      st.series.push_back(std::move(se));
    }
    for (auto& se : st.series) {
      DcmDataset iq;
      iq.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
      iq.putAndInsertString(DCM_StudyInstanceUID, st.study_uid.c_str());
      iq.putAndInsertString(DCM_SeriesInstanceUID, se.uid.c_str());
      iq.putAndInsertString(DCM_SOPInstanceUID, "");
      se.instances = static_cast<int>(f.find(iq).size());
    }
  }
  return out;
}

int probe_instance_count(std::uint16_t port, const std::string& called_ae,
                         const std::string& calling_ae) {
  int n = 0;
  for (const auto& st : probe_studies(port, called_ae, calling_ae)) n += st.instance_count();
  return n;
}

}  // namespace p2x::test
