// TempDir (see temp_dir.hpp).
#include "support/temp_dir.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace p2x::test {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
  std::string templ = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!mkdtemp(templ.data())) {
    throw std::runtime_error("cannot create a temporary directory " + templ + ": " +
                             std::strerror(errno));
  }
  ::chmod(templ.c_str(), 0755);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace p2x::test
