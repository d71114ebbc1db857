// p2x_pacs_fixture: start a test PACS (Orthanc or dcmqrscp) detached from this process and print
// its coordinates as shell assignments; or stop one by PID. Used by tests/fixtures/start-pacs.
#include "support/pacs_fixture.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace fs = std::filesystem;

namespace {

bool is_dicom(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  char buf[132];
  return is.read(buf, sizeof buf) && std::memcmp(buf + 128, "DICM", 4) == 0;
}

std::vector<std::string> collect(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file() && is_dicom(e.path())) files.push_back(e.path().string());
    } else if (is_dicom(in)) {
      files.push_back(in);
    } else {
      throw std::runtime_error(in + " is neither a directory nor a DICOM file");
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Start/stop a test PACS for pacs2xnat demos and benchmarks"};
  app.require_subcommand(1);
  auto* start = app.add_subcommand("start", "start a PACS and print PACS_* lines");
  std::string kind, work;
  std::vector<std::string> dests, load;
  int port = 0;
  start->add_option("kind", kind, "orthanc|dcmqrscp")->required();
  start->add_option("workdir", work, "work directory (config, storage, server.log)")->required();
  start->add_option("--dest", dests, "move destination AE:PORT (repeatable)");
  start->add_option("--port", port, "DICOM port (default: a free one)")
      ->check(CLI::Range(0, 65535));
  start->add_option("--load", load, "DICOM files or directories to C-STORE after start-up");
  bool http = false;
  start->add_flag("--http", http, "Orthanc: enable the REST API on a free 127.0.0.1 port");
  bool stock = false;
  start->add_flag("--stock", stock,
                  "run the PACS as shipped, without TCP_NODELAY=1 (DCMTK keeps Nagle on)");
  auto* stop = app.add_subcommand("stop", "stop a PACS by PID (TERM, wait, KILL)");
  int pid = 0;
  stop->add_option("pid", pid)->required()->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    if (*stop) return p2x::test::stop_pid(pid) ? 0 : 1;
    std::vector<p2x::test::MoveDestination> md;
    for (const auto& d : dests) {
      const auto colon = d.rfind(':');
      if (colon == std::string::npos || colon == 0)
        throw std::invalid_argument("--dest wants AE:PORT, got '" + d + "'");
      md.push_back(
          {d.substr(0, colon), static_cast<std::uint16_t>(std::stoi(d.substr(colon + 1)))});
    }
    p2x::test::PacsFixture pacs(p2x::test::parse_pacs_kind(kind), work, md,
                                static_cast<std::uint16_t>(port));
    pacs.set_detached(true);
    pacs.set_http_enabled(http);
    pacs.set_stock(stock);
    pacs.start();
    std::printf("PACS_STOCK=%d\n", stock ? 1 : 0);
    std::printf(
        "PACS_KIND=%s\nPACS_PORT=%u\nPACS_PID=%d\nPACS_AET=%s\nPACS_HTTP_PORT=%u\nPACS_LOG=%s\n",
        kind.c_str(), pacs.port(), static_cast<int>(pacs.pid()), pacs.ae_title().c_str(),
        pacs.http_port(), pacs.log_path().c_str());
    std::fflush(stdout);
    if (!load.empty()) {
      const auto files = collect(load);
      const auto t0 = std::chrono::steady_clock::now();
      try {
        pacs.load(files);
      } catch (...) {
        p2x::test::stop_pid(pacs.pid());
        throw;
      }
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("PACS_LOADED=%zu\nPACS_LOAD_SECONDS=%.3f\n", files.size(), secs);
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "p2x_pacs_fixture: " << e.what() << "\n";
    return 1;
  }
}
