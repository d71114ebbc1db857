#include "pipeline/steps.hpp"

#include "pipeline/gate.hpp"

namespace p2x::pipeline {

log::Fields fields_of(const store::Item& it, const std::string& pacs, const std::string& project) {
  log::Fields f;
  f.job_id = it.job_id;
  f.item_id = it.id;
  f.accession = it.accession;
  f.pacs = pacs;
  f.project = project;
  f.subject = it.subject;
  f.session = it.session;
  f.state = std::string(store::to_string(it.state));
  return f;
}

pacs::Peer peer_for(const config::PacsNode& node, const std::string& our_ae) {
  pacs::Peer p;
  p.ae_title = node.ae_title;
  p.storing_aes = node.storing_ae_titles;
  p.host = node.host;
  p.port = node.port;
  p.our_ae = our_ae;
  p.timeouts.connect_s = node.timeouts.connect_s;
  p.timeouts.acse_s = node.timeouts.acse_s;
  p.timeouts.dimse_s = node.timeouts.dimse_s;
  p.timeouts.idle_s = node.timeouts.idle_s;
  return p;
}

std::string describe_row(const store::Item& it) {
  switch (it.kind) {
    case domain::RowKind::Accession:
      return "accession " + it.accession;
    case domain::RowKind::PatientDate:
      return "patient " + it.patient_id + " on " + it.study_date;
    case domain::RowKind::StudyUid:
      break;
  }
  return "study " + it.study_uid;
}

SlotLease::~SlotLease() {
  release();
}

void SlotLease::release() {
  if (held_) gate_.release(pacs_);
  held_ = false;
}

}  // namespace p2x::pipeline
