// TempDir: the one temporary directory type for tests - a fresh directory under $TMPDIR (or
// /tmp), removed with everything in it when the TempDir goes out of scope.
#pragma once

#include <string>

namespace p2x::test {

class TempDir {
 public:
  // Creates <temp>/<prefix>-XXXXXX with mode 0755 (a daemon run as another uid by a root test
  // can enter it); an absolute prefix chooses the parent too (e.g. /dev/shm/name). Throws
  // std::runtime_error when it cannot.
  explicit TempDir(const std::string& prefix = "p2x-test");
  ~TempDir();  // removes the tree; never throws
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace p2x::test
