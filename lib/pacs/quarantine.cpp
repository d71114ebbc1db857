// The quarantine beside a retrieval's directory (see pacs.hpp): files moved in without ever
// replacing one, each with its reason in reasons.txt, and read back for reports.
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace p2x::pacs {

namespace fs = std::filesystem;

namespace {

constexpr const char* kReasons = "reasons.txt";
constexpr int kMaxNames = 10000;  // name, name~2 ... name~9999

// `name`, or for n > 1 "<stem>~<n><extension>".
std::string numbered(const std::string& name, int n) {
  if (n == 1) return name;
  const fs::path p(name);
  return p.stem().string() + "~" + std::to_string(n) + p.extension().string();
}

// The reason on one line: tabs and line breaks become spaces.
std::string one_line(std::string s) {
  std::replace_if(
      s.begin(), s.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
  return s;
}

// Appends "name TAB reason" with one write (O_APPEND: lines from several threads never mix).
void record_reason(const std::string& dir, const std::string& name, const std::string& reason) {
  const std::string path = dir + "/" + kReasons;
  const std::string line = one_line(name) + "\t" + one_line(reason) + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const bool ok =
      fd >= 0 && ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!ok)
    spdlog::error("quarantine: cannot record the reason for {} in {}: {}", name, path,
                  std::strerror(err));
}

// A hidden copy of `file` in dir (for a move across filesystems); the original is removed.
std::string copy_into(const std::string& file, const std::string& dir) {
  const std::string copy = detail::temp_path(dir, fs::path(file).filename().string());
  std::string error;
  if (!detail::copy_new_file(file, copy, error)) throw std::runtime_error(error);
  ::unlink(file.c_str());
  return copy;
}

}  // namespace

std::string quarantine_dir_for(const std::string& dest_dir) {
  fs::path d = fs::path(dest_dir).lexically_normal();
  if (!d.has_filename()) d = d.parent_path();  // "dir/" names dir
  return (d.parent_path() / ".quarantine" / d.filename()).string();
}

std::string quarantine_file(const std::string& file, const std::string& dest_dir,
                            const std::string& name, const std::string& reason) {
  return keep_file_in(file, quarantine_dir_for(dest_dir), name, reason);
}

std::string keep_file_in(const std::string& file, const std::string& dir, const std::string& name,
                         const std::string& reason) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create the quarantine " + dir + ": " + ec.message());
  std::string from = file;
  for (int n = 1; n < kMaxNames;) {
    const std::string to = dir + "/" + numbered(name, n);
    if (detail::rename_new(from, to)) {
      record_reason(dir, numbered(name, n), reason);
      return to;
    }
    if (errno == EEXIST) {
      ++n;
    } else if (errno == EXDEV && from == file) {
      from = copy_into(file, dir);  // then the same name again, on this filesystem
    } else {
      const std::string error = "cannot move " + from + " to " + to + ": " + std::strerror(errno);
      if (from != file) ::unlink(from.c_str());
      throw std::runtime_error(error);
    }
  }
  if (from != file) ::unlink(from.c_str());
  throw std::runtime_error("the quarantine " + dir + " already holds " + std::to_string(kMaxNames) +
                           " copies named like " + name);
}

std::vector<QuarantinedFile> quarantined_files(const std::string& dest_dir) {
  return files_kept_in(quarantine_dir_for(dest_dir));
}

std::vector<QuarantinedFile> files_kept_in(const std::string& dir) {
  std::vector<QuarantinedFile> out;
  std::set<std::string> listed;
  std::ifstream in(dir + "/" + kReasons);
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    QuarantinedFile q{line.substr(0, tab), tab == std::string::npos ? "" : line.substr(tab + 1)};
    std::error_code ec;
    if (!fs::is_regular_file(dir + "/" + q.name, ec) || !listed.insert(q.name).second) continue;
    out.push_back(std::move(q));
  }
  // Files whose reason could not be written (disk full...) are still reported.
  std::vector<std::string> unlisted;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == kReasons || name.front() == '.' || listed.count(name) || !e.is_regular_file(ec))
      continue;
    unlisted.push_back(name);
  }
  std::sort(unlisted.begin(), unlisted.end());
  for (auto& name : unlisted) out.push_back({std::move(name), "no reason recorded"});
  return out;
}

}  // namespace p2x::pacs
