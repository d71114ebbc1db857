// Internal to the synthetic DICOM generator (testdata.cpp, testdata_iods.cpp): deterministic
// UIDs, the attributes every object of a study shares, and the writers of the objects that are
// not the study's plain images (one per Extra).
#pragma once

#include "testdata.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dctagkey.h>

#include <cstdint>
#include <string>

namespace p2x::test::detail {

// "2.25.<integer below 2^128>" derived from key and seed.
std::string make_uid(const std::string& key, unsigned seed);
std::uint64_t splitmix(std::uint64_t x);
std::uint64_t fnv1a(const std::string& s);

// Throws std::runtime_error naming `what` when cond is bad.
void check(OFCondition cond, const std::string& what);
void put(DcmItem* item, const DcmTagKey& tag, const std::string& value);
void save(DcmFileFormat& ff, const std::string& path, E_TransferSyntax xfer);

struct StudyCtx {
  const StudySpec& spec;
  std::string study_uid, frame_of_ref, study_time, description;
  unsigned seed = 1;
};

// Patient / study / equipment attributes common to every object of the study.
void put_common(DcmItem* ds, const StudyCtx& st);
// General Series attributes (and SeriesDate/Time from the study).
void put_series(DcmItem* ds, const StudyCtx& st, const std::string& series_uid, int number,
                const std::string& modality, const std::string& description);

// Where one extra object goes and what it may refer to.
struct ExtraArgs {
  const StudyCtx& st;
  const GeneratedSeries& images;  // image series 1 (what references point at)
  std::string series_uid, modality, description, sop_uid, path;
  int series_number = 0, instance_number = 1;
};

// SOP class, modality ("" = the study's) and series description of an extra object.
struct ExtraKind {
  const char* sop_class;
  const char* modality;
  const char* description;
};
ExtraKind kind_of(Extra extra);

// Series and SOP Instance UIDs of an extra object of a study (so objects can refer to each other
// whatever order they are written in).
std::string extra_series_uid(const StudyCtx& st, Extra extra);
std::string extra_sop_uid(const StudyCtx& st, Extra extra);

// Writes the object (testdata_iods.cpp).
GeneratedFile write_extra(Extra extra, const ExtraArgs& a);

}  // namespace p2x::test::detail
