// Synthetic DICOM test data: deterministic studies (N studies x M series x K instances) written
// as Part 10 files, with optional odd cases (multi-frame, RLE-compressed, private tags, empty
// accession) and the other objects real studies carry (dose and other SR, key objects,
// presentation states, secondary captures, PDFs, RT objects, Enhanced MR, a private SOP class),
// plus a JSON manifest describing what was written.
#pragma once

#include <string>
#include <vector>

namespace p2x::test {

// Objects of other SOP classes than the study's images, as a PACS holds them next to a CT or MR.
// Each is one minimal but well-formed instance of its IOD (testdata_iods.cpp), in a series of
// its own (numbered after the image series, in this order) unless said otherwise.
enum class Extra {
  DoseSR,             // X-Ray Radiation Dose SR (CT dose report, TID 10011 outline), SR
  ComprehensiveSR,    // Comprehensive SR report with a finding and an image reference, SR
  SecondaryCapture,   // Secondary Capture (a dose screen, RGB), OT
  ScInImageSeries,    // one Secondary Capture inside image series 1 (mixed SOP classes in one
                      // series), of that series' modality
  KeyObject,          // Key Object Selection of images of series 1, KO
  PresentationState,  // Grayscale Softcopy Presentation State on series 1, PR
  Pdf,                // Encapsulated PDF (a real, tiny PDF document), DOC
  RtStruct,           // RT Structure Set: one ROI contoured on series 1, RTSTRUCT
  RtPlan,             // RT Plan: one static photon beam on that structure set, RTPLAN
  RtDose,             // RT Dose: a multi-frame dose grid of that plan, RTDOSE
  CsaNonImage,        // Siemens CSA Non-Image (private SOP class 1.3.12.2.1107.5.9.1), no
                      // pixel data, modality of the study
};
const char* to_string(Extra extra);

// One study to generate. Empty accession is written as an empty AccessionNumber (the study is
// then reachable only by patient ID + date). Odd-case flags:
//  multiframe         -> the first instance of series 1 is a multi-frame instance (`frames`
//                        frames; Enhanced MR / Enhanced CT / US Multi-frame SOP class)
//  compressed         -> the last instance of series 1 is written in RLE Lossless
//  private_tags       -> every instance of the last image series carries a private block
//                        (creator "P2X TEST" in group 0029)
//  presentation_state -> one extra series (modality PR) with one Grayscale Softcopy
//                        Presentation State referencing the images of series 1 (same as
//                        Extra::PresentationState)
//  enhanced           -> every image instance is an Enhanced MR / Enhanced CT multi-frame
//                        object of `frames` frames (MR and CT only)
struct StudySpec {
  std::string accession, patient_id, patient_name, study_date, modality = "MR";
  int series = 2, instances = 3, rows = 256, cols = 256;
  bool multiframe = false, compressed = false, private_tags = false, presentation_state = false;
  bool enhanced = false;
  std::vector<Extra> extras;  // other objects of the study (see Extra), each at most once
  // Extras (defaults are fine for most tests).
  std::string study_description;  // empty -> "Synthetic <modality> study"
  std::string study_time;         // empty -> derived from the study's index (HHMMSS)
  int frames = 4;                 // frames of the multi-frame instance
  // SeriesNumber written in series 1..N (0: no SeriesNumber at all; shorter: the rest are
  // numbered by position). Clashing or missing numbers are what XNAT renames scans for.
  // Folders and GeneratedSeries::number stay the series' position.
  std::vector<int> series_numbers;
};

struct GeneratedFile {
  std::string path, sop_uid, sop_class, transfer_syntax, series_uid;
};

struct GeneratedSeries {
  std::string uid, modality, description;
  int number = 0;
  std::vector<GeneratedFile> files;
};

struct GeneratedStudy {
  StudySpec spec;
  std::string study_uid;
  std::vector<GeneratedSeries> series;
  int instance_count() const;
  std::vector<std::string> files() const;
};

// Writes the studies under out_dir/<study_uid>/<series_number>/<instance>.dcm (absolute paths in
// the result). UIDs and pixel data are derived from (seed, index in specs, spec keys): the same
// call repeated gives the same UIDs; different seeds or keys give different UIDs.
// Throws std::runtime_error on any failure.
std::vector<GeneratedStudy> generate(const std::vector<StudySpec>& specs,
                                     const std::string& out_dir, unsigned seed = 1);

// JSON: {"studies":[{accession, patient_id, patient_name, study_date, study_time, study_uid,
// modality, study_description, instance_count, series:[{uid, modality, description, number,
// instance_count, files:[{path, sop_uid, sop_class, transfer_syntax}]}]}]}
void write_manifest(const std::vector<GeneratedStudy>& studies, const std::string& path);
std::vector<GeneratedStudy> read_manifest(const std::string& path);

// The odd-case set (7 studies, 35 files): STD001 MR (Enhanced MR multi-frame instance + one RLE
// instance), STD002 CT (private tags), STD003 US (multi-frame), "" MR (empty accession, patient
// PSTD04 on 20240113), STD005 MR + STD006 CT (one patient PSTD05, one date 20240114), STD007 MR
// (+ presentation state series).
// Note: dcmqrscp stores the RLE instance but cannot send it (C-MOVE/C-GET report it as a failed
// sub-operation); pass with_compressed = false for a corpus dcmqrscp serves completely.
std::vector<StudySpec> standard_corpus(bool with_compressed = true);

// The studies real sites send besides plain images (each with small 64x64 images):
//  ct_with_dose_objects: CT (series 1 also holds a Secondary Capture) + X-Ray Radiation Dose SR,
//    dose screen Secondary Capture, Encapsulated PDF, Key Object Selection, Presentation State
//    and a Comprehensive SR report;
//  rt_planning_study: CT + RT Structure Set + RT Plan + RT Dose;
//  enhanced_mr_with_csa: Enhanced MR (multi-frame instances) + a Siemens CSA Non-Image object.
StudySpec ct_with_dose_objects(const std::string& accession, const std::string& patient_id,
                               const std::string& study_date, int ct_instances = 3);
StudySpec rt_planning_study(const std::string& accession, const std::string& patient_id,
                            const std::string& study_date, int ct_instances = 3);
StudySpec enhanced_mr_with_csa(const std::string& accession, const std::string& patient_id,
                               const std::string& study_date, int mr_instances = 2);
// The three above, one patient each ("<prefix>P1".. , accessions "<prefix>1"..): every SOP
// class of Extra plus CT and Enhanced MR images.
std::vector<StudySpec> sop_class_corpus(const std::string& prefix = "SOP");

// N studies x M series x K instances of one modality; accession "<prefix>0001"..., one patient
// per study ("P0001"...), study dates counting up from 20240101.
std::vector<StudySpec> uniform_corpus(int studies, int series, int instances,
                                      const std::string& modality = "MR",
                                      const std::string& accession_prefix = "ACC");

}  // namespace p2x::test
