// xnat/zip_writer: study directory -> zip file with libarchive (see zip_writer.hpp).
#include "xnat/zip_writer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

namespace fs = std::filesystem;

namespace p2x::xnat::detail {
namespace {

struct ArchiveDeleter {
  void operator()(archive* a) const noexcept { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void fail_archive(archive* a, const std::string& what) {
  const char* e = archive_error_string(a);
  throw std::runtime_error(what + ": " + (e ? e : "libarchive error"));
}

}  // namespace

TempZip::TempZip(const std::string& dir) {
  fs::path d = fs::path(dir).lexically_normal();
  if (d.filename().empty()) d = d.parent_path();
  fs::path parent = d.parent_path();
  if (parent.empty()) parent = ".";
  std::string tmpl = (parent / ("." + d.filename().string() + ".upload-XXXXXX.zip")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkstemps(buf.data(), 4);
  if (fd < 0)
    throw std::runtime_error("cannot create a temp zip next to " + dir + ": " +
                             std::strerror(errno));
  ::close(fd);
  path_ = buf.data();
}

TempZip::~TempZip() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

ZipStats write_zip(const std::string& dir, const std::string& zip_path) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("study directory " + dir + " does not exist or is not a directory");
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code sec;
    if (it->is_regular_file(sec)) files.push_back(it->path());
  }
  if (ec) throw std::runtime_error("cannot list study directory " + dir + ": " + ec.message());
  if (files.empty()) throw std::runtime_error("study directory " + dir + " holds no files");
  std::sort(files.begin(), files.end());

  std::unique_ptr<archive, ArchiveDeleter> a(archive_write_new());
  if (!a) throw std::runtime_error("libarchive: out of memory");
  if (archive_write_set_format_zip(a.get()) != ARCHIVE_OK) fail_archive(a.get(), "zip format");
  if (archive_write_set_options(a.get(), "zip:compression=store") != ARCHIVE_OK)
    fail_archive(a.get(), "zip options");
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open_filename(a.get(), zip_path.c_str()) != ARCHIVE_OK)
    fail_archive(a.get(), "cannot write " + zip_path);

  ZipStats stats;
  std::vector<char> buf(1 << 20);
  std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
  for (const auto& f : files) {
    Fd in;
    in.fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (in.fd < 0) throw std::runtime_error("cannot open " + f.string() + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(in.fd, &st) != 0)
      throw std::runtime_error("cannot stat " + f.string() + ": " + std::strerror(errno));
    archive_entry_clear(entry.get());
    archive_entry_set_pathname(entry.get(), f.lexically_relative(dir).generic_string().c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), st.st_size);
    archive_entry_set_mtime(entry.get(), st.st_mtime, 0);
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK)
      fail_archive(a.get(), "zip entry " + f.string());
    std::int64_t left = st.st_size;
    while (left > 0) {
      ssize_t n = ::read(in.fd, buf.data(), static_cast<size_t>(std::min<std::int64_t>(left, buf.size())));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error("cannot read " + f.string() + ": " + std::strerror(errno));
      if (n == 0) throw std::runtime_error(f.string() + " shrank while being zipped");
      if (archive_write_data(a.get(), buf.data(), static_cast<size_t>(n)) != n)
        fail_archive(a.get(), "writing " + zip_path);
      left -= n;
    }
    ++stats.files;
    stats.bytes_in += st.st_size;
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) fail_archive(a.get(), "closing " + zip_path);
  stats.zip_size = static_cast<std::int64_t>(fs::file_size(zip_path, ec));
  if (ec) throw std::runtime_error("cannot stat " + zip_path + ": " + ec.message());
  return stats;
}

}  // namespace p2x::xnat::detail
