// p2x_gen_studies: writes synthetic DICOM studies (see tests/support/testdata.hpp) and a manifest.
#include "support/testdata.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Generate synthetic DICOM studies for pacs2xnat tests and benchmarks"};
  std::string out, manifest, csv, corpus = "uniform", modality = "MR", prefix = "ACC";
  int studies = 1, series = 2, instances = 3, rows = 256, cols = 256, frames = 4;
  unsigned seed = 1;
  bool multiframe = false, compressed = false, private_tags = false, presentation_state = false;
  app.add_option("-o,--out", out, "output directory")->required();
  app.add_option("--corpus", corpus, "uniform (N x M x K) or standard (odd-case set)")
      ->check(CLI::IsMember({"uniform", "standard"}));
  app.add_option("-n,--studies", studies, "studies")->check(CLI::PositiveNumber);
  app.add_option("-s,--series", series, "series per study")->check(CLI::PositiveNumber);
  app.add_option("-k,--instances", instances, "instances per series")->check(CLI::PositiveNumber);
  app.add_option("-m,--modality", modality, "MR, CT, US (others: Secondary Capture)");
  app.add_option("--rows", rows)->check(CLI::Range(1, 4096));
  app.add_option("--cols", cols)->check(CLI::Range(1, 4096));
  app.add_option("--frames", frames, "frames of the multi-frame instance")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed);
  app.add_option("--accession-prefix", prefix);
  app.add_flag("--multiframe", multiframe, "first instance of series 1 is multi-frame");
  app.add_flag("--compressed", compressed, "last instance of series 1 is RLE lossless");
  app.add_flag("--private-tags", private_tags, "last series carries a private block");
  app.add_flag("--presentation-state", presentation_state, "add a GSPS series");
  app.add_option("--manifest", manifest, "manifest path (default OUT/manifest.json)");
  app.add_option("--csv", csv, "also write AccessionNumber,PatientID,StudyDate,StudyInstanceUID");
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<p2x::test::StudySpec> specs;
    if (corpus == "standard") {
      specs = p2x::test::standard_corpus();
    } else {
      specs = p2x::test::uniform_corpus(studies, series, instances, modality, prefix);
      for (auto& s : specs) {
        s.rows = rows;
        s.cols = cols;
        s.frames = frames;
        s.multiframe = multiframe;
        s.compressed = compressed;
        s.private_tags = private_tags;
        s.presentation_state = presentation_state;
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    const auto result = p2x::test::generate(specs, out, seed);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (manifest.empty()) manifest = (std::filesystem::path(out) / "manifest.json").string();
    p2x::test::write_manifest(result, manifest);
    if (!csv.empty()) {
      std::ofstream os(csv, std::ios::trunc);
      os << "AccessionNumber,PatientID,StudyDate,StudyInstanceUID\n";
      for (const auto& st : result)
        os << st.spec.accession << ',' << st.spec.patient_id << ',' << st.spec.study_date << ','
           << st.study_uid << '\n';
      if (!os) throw std::runtime_error("cannot write " + csv);
    }
    std::uintmax_t files = 0, bytes = 0;
    for (const auto& st : result)
      for (const auto& f : st.files()) {
        ++files;
        bytes += std::filesystem::file_size(f);
      }
    std::printf("studies=%zu files=%ju bytes=%ju seconds=%.3f manifest=%s\n", result.size(), files,
                bytes, secs, manifest.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "p2x_gen_studies: " << e.what() << "\n";
    return 1;
  }
}
