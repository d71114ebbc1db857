#include "pipeline/spool.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "pacs/pacs.hpp"
#include "pipeline/validated.hpp"
#include "store/store.hpp"
#include "text/text.hpp"

namespace p2x::pipeline {

namespace fs = std::filesystem;

namespace {

constexpr const char* kInUse = ".boot-in-use";
constexpr const char* kSynced = ".boot-synced";
constexpr const char* kStaging = ".incoming";
constexpr const char* kQuarantine = ".quarantine";

// The file's first line without trailing blanks; nullopt if it cannot be opened.
std::optional<std::string> first_line(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string s;
  std::getline(in, s);
  return text::trim(s);
}

// A mark's content, or "" if it does not exist.
std::string read_mark(const std::string& path) {
  return first_line(path).value_or("");
}

std::runtime_error sys_error(const std::string& what, const std::string& path) {
  return std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw sys_error("cannot open", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw sys_error("cannot fsync", path);
}

// Temp file, fsync, rename, fsync of the directory.
void write_mark(const std::string& dir, const char* name, const std::string& value) {
  const std::string path = dir + "/" + name, tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << value << "\n";
    if (!out.flush()) throw sys_error("cannot write", tmp);
  }
  fsync_path(tmp, O_RDONLY);
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw sys_error("cannot rename to", path);
  fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

bool is_item_dir(const fs::directory_entry& e) {
  const std::string name = e.path().filename().string();
  return !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
}

// Removes a directory tree; throws naming it on failure (a missing one is fine).
void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) throw std::runtime_error("cannot remove " + path + ": " + ec.message());
}

constexpr std::size_t kReasonsShown = 5;

// The item id a folder of the spool is named after; nullopt for anything else.
std::optional<std::int64_t> item_of(const std::string& name) {
  if (name.empty() || name.size() > 18 || name.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoll(name);
}

// Megabytes held by every regular file under `dir`.
std::uintmax_t megabytes_in(const std::string& dir) {
  std::uintmax_t bytes = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec)) bytes += it->file_size(ec);
  }
  return bytes / (1024 * 1024);
}

}  // namespace

std::string Spool::item_dir(std::int64_t item_id) const {
  return item_spool_dir(root_, item_id);
}

std::string Spool::staging_dir() const {
  return root_ + "/" + kStaging;
}

std::string Spool::make_item_dir(std::int64_t item_id) const {
  const std::string dir = item_dir(item_id);
  fs::create_directories(dir);
  return dir;
}

std::string Spool::quarantine_dir(std::int64_t item_id) const {
  return root_ + "/" + kQuarantine + "/" + std::to_string(item_id);
}

std::string Spool::keep_apart(const std::string& file, const std::string& dest_dir,
                              const std::string& name, const std::string& reason) const {
  fs::path d = fs::path(dest_dir).lexically_normal();
  if (!d.has_filename()) d = d.parent_path();  // "dir/" names dir
  return pacs::keep_file_in(file, root_ + "/" + kQuarantine + "/" + d.filename().string(), name,
                            reason);
}

std::string Spool::quarantine(std::int64_t item_id, const std::string& file,
                              const std::string& reason) const {
  return pacs::keep_file_in(file, quarantine_dir(item_id), fs::path(file).filename().string(),
                            reason);
}

std::string Spool::quarantine_note(std::int64_t item_id) const {
  const auto files = pacs::files_kept_in(quarantine_dir(item_id));
  if (files.empty()) return {};
  std::vector<std::pair<std::string, int>> reasons;  // in the order they came
  for (const auto& f : files) {
    auto it = std::find_if(reasons.begin(), reasons.end(),
                           [&](const auto& r) { return r.first == f.reason; });
    if (it == reasons.end()) {
      reasons.emplace_back(f.reason, 1);
    } else {
      ++it->second;
    }
  }
  std::string note = "; quarantined " + std::to_string(files.size()) + " instance(s) in " +
                     quarantine_dir(item_id) + " (never pushed; removed with the study's spool): ";
  for (std::size_t i = 0; i < reasons.size() && i < kReasonsShown; ++i) {
    note += (i == 0 ? "" : "; ") + reasons[i].first;
    if (reasons[i].second > 1) note += " (" + std::to_string(reasons[i].second) + " instances)";
  }
  if (reasons.size() > kReasonsShown)
    note += "; and " + std::to_string(reasons.size() - kReasonsShown) + " other reason(s)";
  return note;
}

std::optional<std::vector<validate::ValidFile>> Spool::validated(std::int64_t item_id) const {
  return read_validated(item_dir(item_id));
}

void Spool::record_validated(std::int64_t item_id,
                             const std::vector<validate::ValidFile>& files) const {
  write_validated(item_dir(item_id), files);
}

void Spool::forget_validated(std::int64_t item_id) const noexcept {
  pipeline::forget_validated(item_dir(item_id));
}

void Spool::remove_file(const std::string& path) const noexcept {
  std::error_code ec;
  fs::remove(path, ec);
}

Spool::Held Spool::held(std::int64_t item_id) const {
  Held h;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(item_dir(item_id), ec)) {
    if (!e.is_regular_file(ec)) continue;
    const auto size = static_cast<std::int64_t>(e.file_size(ec));
    h.bytes += size;
    if (e.path().extension() == ".dcm" && size > 0) ++h.files;
  }
  return h;
}

int Spool::prepare(const std::string& boot_id, store::Store& store) const {
  return prepare_spool(root_, boot_id, store);
}

void Spool::mark_synced(const std::string& boot_id) const {
  mark_spool_synced(root_, boot_id);
}

void Spool::remove(std::int64_t item_id) const {
  remove_item_spool(root_, item_id);
}

std::string Spool::lacks_room(const config::Limits& lim) const {
  struct statvfs st {};
  if (::statvfs(root_.c_str(), &st) == 0) {
    const double free_mb = static_cast<double>(st.f_bavail) * st.f_frsize / (1024.0 * 1024.0);
    if (free_mb < static_cast<double>(lim.spool_min_free_mb)) {
      return "spool " + root_ + " has " + std::to_string(static_cast<long long>(free_mb)) +
             " MB free, below limits.spool_min_free_mb (" + std::to_string(lim.spool_min_free_mb) +
             " MB); retrieval resumes when space is freed";
    }
  }
  if (lim.spool_max_mb <= 0) return {};
  const std::uintmax_t mb = megabytes_in(root_);
  if (mb < static_cast<std::uintmax_t>(lim.spool_max_mb)) return {};
  return "spool holds " + std::to_string(mb) + " MB, at limits.spool_max_mb (" +
         std::to_string(lim.spool_max_mb) + " MB); retrieval resumes as studies are pushed";
}

void Spool::clean(bool at_start, const std::function<bool(std::int64_t)>& finished) const {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    const std::string name = e.path().filename().string();
    const auto id = item_of(name);
    if (!id) {
      if (at_start && name == kStaging) {  // the SCP's staging files
        for (const auto& f : fs::directory_iterator(e.path(), ec)) fs::remove_all(f.path(), ec);
      }
      continue;
    }
    if (at_start) {
      if (const int n = remove_crash_leftovers(e.path().string()))
        spdlog::info("spool: removed {} unfinished file(s) of item {} left by the last run", n,
                     *id);
    }
    if (!finished(*id)) continue;
    try {
      remove(*id);  // with its quarantine
    } catch (const std::exception& err) {
      spdlog::warn("spool: {}", err.what());
    }
  }
}

std::string read_boot_id(const std::string& boot_id_file) {
  const auto id = first_line(boot_id_file);
  if (!id) throw std::runtime_error("cannot read the boot id from " + boot_id_file);
  if (id->empty()) throw std::runtime_error("the boot id file " + boot_id_file + " is empty");
  return *id;
}

bool spool_survived(const std::string& spool_dir, const std::string& boot_id) {
  const std::string in_use = read_mark(spool_dir + "/" + kInUse);
  if (in_use.empty() || in_use == boot_id) return true;
  return read_mark(spool_dir + "/" + kSynced) == in_use;
}

void mark_spool_in_use(const std::string& spool_dir, const std::string& boot_id) {
  const std::string synced = spool_dir + "/" + kSynced;
  if (::unlink(synced.c_str()) != 0 && errno != ENOENT) throw sys_error("cannot remove", synced);
  write_mark(spool_dir, kInUse, boot_id);  // its directory fsync covers the unlink too
}

void mark_spool_synced(const std::string& spool_dir, const std::string& boot_id) {
  const int fd = ::open(spool_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw sys_error("cannot open", spool_dir);
  const int rc = ::syncfs(fd);
  ::close(fd);
  if (rc != 0) throw sys_error("cannot sync the filesystem of", spool_dir);
  write_mark(spool_dir, kSynced, boot_id);
}

int remove_crash_leftovers(const std::string& item_dir) noexcept {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(item_dir, ec)) {
    const std::string name = e.path().filename().string();
    const bool part = name.rfind(".p2x-", 0) == 0 &&
                      (e.path().extension() == ".part" || e.path().extension() == ".tmp");
    std::error_code rec;
    if (part && e.is_regular_file(rec) && fs::remove(e.path(), rec)) ++removed;
  }
  return removed;
}

std::string item_spool_dir(const std::string& spool_dir, std::int64_t item_id) {
  return spool_dir + "/" + std::to_string(item_id);
}

void remove_item_spool(const std::string& spool_dir, std::int64_t item_id) {
  remove_tree(Spool(spool_dir).quarantine_dir(item_id));
  remove_tree(item_spool_dir(spool_dir, item_id));
}

int discard_spool(const std::string& spool_dir) {
  int n = 0;
  std::error_code list_ec;
  for (fs::directory_iterator it(spool_dir, list_ec), end; !list_ec && it != end;
       it.increment(list_ec)) {
    std::error_code ec;
    if (!it->is_directory(ec) || !is_item_dir(*it)) continue;
    remove_tree(spool_dir + "/" + kQuarantine + "/" + it->path().filename().string());
    remove_tree(it->path().string());
    ++n;
  }
  if (list_ec)
    throw std::runtime_error("cannot list the spool " + spool_dir + ": " + list_ec.message());
  // Quarantines whose item directory was already gone.
  remove_tree(spool_dir + "/" + kQuarantine);
  return n;
}

int prepare_spool(const std::string& spool_dir, const std::string& boot_id, store::Store& store) {
  int requeued = 0;
  if (!spool_survived(spool_dir, boot_id)) {
    const std::string why =
        "the machine restarted without a clean stop of pacs2xnatd (power loss or kernel crash?), "
        "so spool files may be missing or damaged: the study is retrieved again";
    requeued = store.requeue_unfinished(why);
    const int dirs = discard_spool(spool_dir);
    spdlog::warn("spool {}: {}; discarded {} study folder(s), {} item(s) back to queued", spool_dir,
                 why, dirs, requeued);
  }
  mark_spool_in_use(spool_dir, boot_id);
  return requeued;
}

}  // namespace p2x::pipeline
