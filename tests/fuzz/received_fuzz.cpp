// fuzz_received: pacs::check_received_file, what the Storage SCP (and the C-GET SCU) reads from
// a Part 10 file whose data set a peer sent. The input is the whole file, as DCMTK reads it back
// from the temp file (meta header included: seeds are ordinary .dcm files). It is written to a
// file in a private directory under /dev/shm (or $TMPDIR) for each run, as the SCP does.
// DCMTK itself is Debian's, not instrumented: coverage guides the fuzzer through our code only,
// but a crash, hang or memory blow-up inside DCMTK's parsing still shows.
// Checked besides that: an accepted file carries the announced SOP Instance UID and three valid
// UIDs; a refusal has a reason that fits a C-STORE ErrorComment.
#include "expect.hpp"
#include "pacs/received_check.hpp"
#include "text/text.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace {

// The SOP Instance UID of every seed in corpus/received (make-seeds): a mutated file that keeps
// it gets past the mismatch check into the UID checks.
const std::string kAnnouncedSop = "1.2.826.0.1.3680043.2.1125.1.2.3";

std::string g_dir;
std::string g_file;

void remove_scratch() {
  ::unlink(g_file.c_str());
  ::rmdir(g_dir.c_str());
}

void write_file(const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(g_file.c_str(), "wb");
  if (f == nullptr || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) {
    std::perror(g_file.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // DCMTK warns on stderr about every odd element; the fuzzer's output stays readable.
  OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  const char* tmp = std::getenv("TMPDIR");
  std::string parent = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (tmp ? tmp : "/tmp");
  std::string templ = parent + "/p2x-fuzz-received-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    std::perror(templ.c_str());
    std::abort();
  }
  g_dir = templ;
  g_file = g_dir + "/received.dcm";
  std::atexit(remove_scratch);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  write_file(data, size);
  const auto check = p2x::pacs::check_received_file(g_file, kAnnouncedSop);
  const auto what = [&] {
    return "fault " + std::to_string(static_cast<int>(check.fault)) + " '" + check.error +
           "' study '" + check.study_uid + "' series '" + check.series_uid + "' sop '" +
           check.sop_uid + "'";
  };
  if (check.ok()) {
    P2X_FUZZ_EXPECT(check.error.empty() && check.sop_uid == kAnnouncedSop, what());
    P2X_FUZZ_EXPECT(p2x::text::is_valid_uid(check.study_uid), what());
    P2X_FUZZ_EXPECT(p2x::text::is_valid_uid(check.series_uid), what());
  } else {
    P2X_FUZZ_EXPECT(!check.error.empty() && check.error.size() <= 64, what());
  }
  return 0;
}
