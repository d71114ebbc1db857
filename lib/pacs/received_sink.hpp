// pacs/received_sink: where the Storage SCP puts what it receives, as the owner of the files
// (the pipeline's Spool) tells it — the staging folder for instances whose study is not known
// yet, and the place a second copy of an instance that differs from the first is kept apart.
// The SCP computes neither path itself when it has a sink (ScpOptions::sink).
#pragma once

#include <string>

namespace p2x::pacs {

class ReceivedSink {
 public:
  virtual ~ReceivedSink() = default;
  // Where instances wait while their StudyInstanceUID is read (best on the filesystem of the
  // routes' directories: they are renamed there).
  virtual std::string staging_dir() const = 0;
  // Moves `file`, received for `dest_dir` as `name`, where it is kept apart (never used),
  // recording `reason`; returns where it went. Throws std::runtime_error naming the file.
  virtual std::string keep_apart(const std::string& file, const std::string& dest_dir,
                                 const std::string& name, const std::string& reason) const = 0;
};

}  // namespace p2x::pacs
