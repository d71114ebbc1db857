// pipeline/validated: the validated file list as compact JSON (see validated.hpp).
#include "pipeline/validated.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace p2x::pipeline {

namespace {

constexpr const char* kName = ".p2x-validated.json";
constexpr int kVersion = 1;

std::string path_of(const std::string& dir) {
  return dir + "/" + kName;
}

nlohmann::json row_of(const validate::ValidFile& f) {
  return nlohmann::json::array({f.name, f.size, f.crc, f.series_uid, f.sop_uid, f.sop_class});
}

// One row back, or throws naming what is wrong with it.
validate::ValidFile file_of(const nlohmann::json& row, const std::string& where) {
  if (!row.is_array() || row.size() != 6 || !row[0].is_string() || !row[1].is_number_unsigned() ||
      !row[2].is_number_unsigned() || !row[3].is_string() || !row[4].is_string() ||
      !row[5].is_string() || row[2].get<std::uint64_t>() > 0xFFFFFFFFu)
    throw std::runtime_error(where + " has a malformed entry");
  validate::ValidFile f;
  f.name = row[0].get<std::string>();
  if (f.name.empty() || f.name[0] == '.' || f.name.find('/') != std::string::npos)
    throw std::runtime_error(where + " names a file outside the study folder: " + f.name);
  f.size = row[1].get<std::uint64_t>();
  f.crc = static_cast<std::uint32_t>(row[2].get<std::uint64_t>());
  f.series_uid = row[3].get<std::string>();
  f.sop_uid = row[4].get<std::string>();
  f.sop_class = row[5].get<std::string>();
  return f;
}

}  // namespace

void write_validated(const std::string& dir, const std::vector<validate::ValidFile>& files) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& f : files) rows.push_back(row_of(f));
  const nlohmann::json doc = {{"version", kVersion}, {"files", std::move(rows)}};
  const std::string path = path_of(dir), tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << doc.dump();
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + ec.message());
}

std::optional<std::vector<validate::ValidFile>> read_validated(const std::string& dir) {
  const std::string path = path_of(dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::nullopt;
    throw std::runtime_error("cannot read " + path);
  }
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + " is not valid JSON: " + e.what());
  }
  const bool right_shape =
      doc.is_object() && doc.contains("version") && doc["version"].is_number_integer() &&
      doc["version"].get<int>() == kVersion && doc.contains("files") && doc["files"].is_array();
  if (!right_shape)
    throw std::runtime_error(path + " is not a validated file list of version " +
                             std::to_string(kVersion));
  std::vector<validate::ValidFile> files;
  for (const auto& row : doc["files"]) files.push_back(file_of(row, path));
  return files;
}

void forget_validated(const std::string& dir) noexcept {
  std::error_code ec;
  std::filesystem::remove(path_of(dir), ec);
}

}  // namespace p2x::pipeline
