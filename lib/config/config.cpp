// config: the top-level reader (root, paths, limits, xnat sections) and file loading.
#include "config/config.hpp"
#include "config/json_reader.hpp"
#include "config/sections.hpp"
#include "config/values.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

namespace p2x::config {
namespace detail {
namespace {

constexpr std::int64_t kUnbounded = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t kMaxSocketPath = 107;  // sizeof(sockaddr_un::sun_path) - 1

// A C-STORE push to our own Storage SCP (its port on this machine) would send each study back
// into the daemon, which refuses it: every push would fail.
void check_push_is_not_us(const Config& c, const Node& xnat) {
  if (c.xnat.push != PushMethod::CStore || c.xnat.dicom_port != c.storage_port) return;
  if (!is_local_host(c.xnat.dicom_host)) return;
  const bool set = xnat.json().is_object() && xnat.json().contains("dicom_port");
  Node(set ? xnat.json().at("dicom_port") : xnat.json(),
       set ? join_path(xnat.path(), "dicom_port") : xnat.path(), xnat.source())
      .fail("the C-STORE push goes to " + c.xnat.dicom_host + ":" +
            std::to_string(c.xnat.dicom_port) + ", which is this daemon's own Storage SCP " +
            "(storage_port " + std::to_string(c.storage_port) + " on this machine): studies " +
            "would be sent back into pacs2xnatd. Set xnat.dicom_host and xnat.dicom_port to " +
            "XNAT's DICOM receiver");
}

// The Storage SCP's caps per address and per calling AE title: at most storage_max_associations;
// by default half of it, or as many as one PACS that retrieves with C-MOVE may open at once.
void read_storage_caps(const ObjectReader& r, Config& c) {
  int wanted = (c.storage_max_associations + 1) / 2;
  for (const auto& p : c.pacs) {
    if (p.retrieve != RetrieveMethod::Move) continue;
    wanted = std::max(wanted, p.max_associations);
    for (const auto& w : p.windows) wanted = std::max(wanted, w.max_associations);
  }
  wanted = std::min(wanted, c.storage_max_associations);
  const auto read_cap = [&](const char* key, int& cap) {
    cap = wanted;
    r.read_int(key, cap, 1, 256);
    if (cap > c.storage_max_associations)
      r.required(key).fail("must not be larger than storage_max_associations (" +
                           std::to_string(c.storage_max_associations) + ")");
  };
  read_cap("storage_max_associations_per_address", c.storage_max_associations_per_address);
  read_cap("storage_max_associations_per_ae", c.storage_max_associations_per_ae);
  r.read_int("storage_busy_idle_s", c.storage_busy_idle_s, 1, 3600);
}

Config read_root(const Node& root) {
  ObjectReader r(root, {"ae_title", "storage_port", "storage_max_associations",
                        "storage_max_associations_per_address", "storage_max_associations_per_ae",
                        "storage_busy_idle_s", "storage_allowed_calling_aes", "log_level", "paths",
                        "limits", "pacs", "xnat", "web"});
  Config c;
  if (auto ae = r.optional("ae_title")) c.ae_title = read_ae_title(*ae);
  r.read_int("storage_port", c.storage_port, 1, 65535);
  r.read_int("storage_max_associations", c.storage_max_associations, 1, 256);
  if (auto level = r.optional("log_level")) {
    c.log_level = level->as_enum({"trace", "debug", "info", "warn", "error", "critical", "off"});
  }
  if (auto paths = r.optional("paths")) {
    c.paths = read_paths(*paths);
  } else {
    c.paths.spool_dir = c.paths.state_dir + "/spool";
  }
  if (auto limits = r.optional("limits")) c.limits = read_limits(*limits);
  c.pacs = read_pacs_list(r.required("pacs"));
  read_storage_caps(r, c);
  // Every PACS's storing AE titles, and the ones listed (e.g. for a C-ECHO from a workstation).
  for (const auto& p : c.pacs) {
    for (const auto& ae : p.storing_ae_titles) c.storage_allowed_calling_aes.push_back(ae);
  }
  if (auto allowed = r.optional("storage_allowed_calling_aes")) {
    for (const Node& ae : allowed->as_array(true)) {
      c.storage_allowed_calling_aes.push_back(read_ae_title(ae));
    }
  }
  const Node xnat = r.required("xnat");
  c.xnat = read_xnat(xnat);
  check_push_is_not_us(c, xnat);
  if (auto web = r.optional("web")) c.web = read_web(*web);
  return c;
}

}  // namespace

Paths read_paths(const Node& node) {
  ObjectReader r(node, {"state_dir", "spool_dir", "socket", "boot_id_file"});
  Paths p;
  if (auto state = r.optional("state_dir")) p.state_dir = read_absolute_path(*state);
  while (p.state_dir.size() > 1 && p.state_dir.back() == '/') p.state_dir.pop_back();
  if (auto spool = r.optional("spool_dir")) {
    if (!spool->json().is_string() || !spool->json().get_ref<const std::string&>().empty()) {
      p.spool_dir = read_absolute_path(*spool);
    }
  }
  if (p.spool_dir.empty()) p.spool_dir = (p.state_dir == "/" ? "" : p.state_dir) + "/spool";
  if (auto socket = r.optional("socket")) p.socket = read_absolute_path(*socket, kMaxSocketPath);
  if (auto boot = r.optional("boot_id_file")) p.boot_id_file = read_absolute_path(*boot);
  return p;
}

Limits read_limits(const Node& node) {
  ObjectReader r(node, {"max_attempts", "backoff_initial_s", "backoff_max_s", "circuit_failures",
                        "circuit_probe_s", "max_request_bytes", "spool_min_free_mb", "spool_max_mb",
                        "study_max_mb", "drain_timeout_s"});
  Limits l;
  r.read_int("max_attempts", l.max_attempts, 1, 100);
  r.read_int("backoff_initial_s", l.backoff_initial_s, 1, 86400);
  r.read_int("backoff_max_s", l.backoff_max_s, 1, 7 * 86400);
  if (l.backoff_max_s < l.backoff_initial_s) {
    Node where =
        r.has("backoff_max_s") ? r.required("backoff_max_s") : r.required("backoff_initial_s");
    where.fail("limits.backoff_max_s (" + std::to_string(l.backoff_max_s) +
               ") must not be smaller than limits.backoff_initial_s (" +
               std::to_string(l.backoff_initial_s) + ")");
  }
  r.read_int("circuit_failures", l.circuit_failures, 1, 1000);
  r.read_int("circuit_probe_s", l.circuit_probe_s, 1, 3600);
  r.read_int("max_request_bytes", l.max_request_bytes, 1024, std::int64_t{1} << 32);
  r.read_int("spool_min_free_mb", l.spool_min_free_mb, 0, kUnbounded);
  r.read_int("spool_max_mb", l.spool_max_mb, 0, kUnbounded);
  r.read_int("study_max_mb", l.study_max_mb, 1, kUnbounded);
  r.read_int("drain_timeout_s", l.drain_timeout_s, 0, 3600);
  return l;
}

Xnat read_xnat(const Node& node) {
  ObjectReader r(node, {"url", "credentials_file", "push", "verify_tls", "ca_file", "prearchive",
                        "max_pushes", "timeout_s", "dicom_ae", "dicom_host", "dicom_port"});
  Xnat x;
  x.url = read_base_url(r.required("url"));
  x.credentials_file = r.required("credentials_file").as_non_empty_string();
  if (auto push = r.optional("push")) {
    x.push =
        *domain::parse_push_method(push->as_enum({domain::to_string(PushMethod::Rest).data(),
                                                  domain::to_string(PushMethod::CStore).data()}));
  }
  r.read_bool("verify_tls", x.verify_tls);
  r.read_string("ca_file", x.ca_file);
  if (auto pre = r.optional("prearchive")) {
    if (pre->json().is_boolean()) {
      x.prearchive = pre->as_bool();
    } else {
      pre->as_enum({"project"});  // or true / false
      x.prearchive.reset();
    }
  }
  r.read_int("max_pushes", x.max_pushes, 1, 64);
  r.read_int("timeout_s", x.timeout_s, 1, 3600);
  x.dicom_ae = "XNAT";
  if (auto ae = r.optional("dicom_ae")) x.dicom_ae = read_ae_title(*ae);
  if (auto host = r.optional("dicom_host")) {
    bool empty = host->json().is_string() && host->json().get_ref<const std::string&>().empty();
    if (!empty) x.dicom_host = read_host(*host);
  }
  r.read_int("dicom_port", x.dicom_port, 1, 65535);
  if (x.push == PushMethod::CStore && x.dicom_host.empty()) {
    Node(node.json(), join_path(node.path(), "dicom_host"), node.source())
        .fail("required when xnat.push is \"cstore\"");
  }
  if (x.push == PushMethod::CStore && x.prearchive) {
    // Nothing sent by C-STORE can choose: XNAT's DICOM receiver files each session by the
    // project's own prearchive setting, and verification must look where it did.
    Node(node.json(), join_path(node.path(), "prearchive"), node.source())
        .fail(
            "must be \"project\" when xnat.push is \"cstore\": XNAT's DICOM receiver files "
            "sessions by each project's own prearchive setting, a push cannot force it");
  }
  return x;
}

}  // namespace detail

const PacsNode* Config::find_pacs(std::string_view name) const {
  for (const auto& p : pacs) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Config parse(std::string_view json_text, std::string_view source) {
  const std::string src(source);
  detail::Json doc = detail::parse_json(json_text, src);
  return detail::read_root(detail::Node(doc, "", src));
}

Config load_file(const std::string& path) {
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  errno = 0;
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) {
    throw ConfigError(path + ": cannot open config file: " + std::strerror(errno));
  }
  std::string text;
  char buffer[65536];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    text.append(buffer, n);
    if (text.size() > 16 * 1024 * 1024) {
      throw ConfigError(path + ": config file is larger than 16 MiB");
    }
  }
  if (std::ferror(file.get())) {
    throw ConfigError(path + ": cannot read config file: " + std::strerror(errno));
  }
  return parse(text, path);
}

}  // namespace p2x::config
