#include "service/commands.hpp"

#include <malloc.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <set>
#include <sstream>

#include "intake/intake.hpp"
#include "log/log.hpp"
#include "text/text.hpp"

namespace p2x::service {

using ipc::CommandError;
using nlohmann::json;
namespace code = ipc::code;

namespace {

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

std::int64_t job_id_arg(const json& args) {
  if (!args.contains("job") || !args["job"].is_number_integer()) {
    throw CommandError(code::bad_request, "a job number is required");
  }
  return args["job"].get<std::int64_t>();
}

store::Job require_job(store::Store& st, std::int64_t id) {
  auto job = st.job(id);
  if (!job) {
    throw CommandError(code::not_found,
                       "no job " + std::to_string(id) + " (see `pacs2xnat list`)");
  }
  return *job;
}

std::string kind_name(intake::RowKind k) {
  switch (k) {
    case intake::RowKind::Accession: return "accession";
    case intake::RowKind::PatientDate: return "patient_date";
    case intake::RowKind::StudyUid: return "study_uid";
  }
  return "accession";
}

json item_json(const store::Item& it) {
  return json{{"id", it.id},           {"row", it.row},
              {"line", it.line},       {"kind", it.kind},
              {"accession", it.accession}, {"patient_id", it.patient_id},
              {"study_date", it.study_date}, {"study_uid", it.study_uid},
              {"subject", it.subject}, {"session", it.session},
              {"state", std::string(store::to_string(it.state))},
              {"attempts", it.attempts}, {"last_error", it.last_error},
              {"retryable", it.retryable}, {"wait_reason", it.wait_reason},
              {"next_attempt_at", it.next_attempt_at},
              {"expected", it.expected}, {"received", it.received},
              {"pushed", it.pushed},   {"verified", it.verified}, {"bytes", it.bytes}};
}

// A report cell: quoted where needed, formula-like values neutralised (OWASP CSV injection).
std::string csv_cell(const std::string& v) { return text::csv_field(v); }

json submit(Context& ctx, const json& args, const ipc::Peer& peer) {
  const std::string project = args.at("project").get<std::string>();
  const std::string pacs = args.at("pacs").get<std::string>();
  const std::string csv_name = args.value("csv_name", std::string("stdin"));
  const std::string bytes = ipc::bytes_argument(args, "csv_base64");
  if (!text::is_valid_label(project)) {
    throw CommandError(code::refused, "project \"" + project +
                                          "\" is not a valid XNAT project ID (letters, digits, _ and -)");
  }
  if (!ctx.cfg.find_pacs(pacs)) {
    std::string known;
    for (const auto& p : ctx.cfg.pacs) known += (known.empty() ? "" : ", ") + p.name;
    throw CommandError(code::refused,
                       "unknown PACS \"" + pacs + "\"; configured PACS nodes: " + known);
  }
  intake::Result parsed = intake::parse_csv(bytes);
  if (!parsed.ok()) {
    std::string msg = csv_name + ": " + std::to_string(parsed.problems.size()) +
                      " problem(s); nothing was queued:";
    for (const auto& p : parsed.problems) msg += "\n  " + csv_name + ": " + intake::format(p);
    throw CommandError(code::refused, msg);
  }
  const std::string modality = args.value("modality", std::string());
  store::NewJob job;
  job.project = project;
  job.pacs = pacs;
  job.csv_name = csv_name;
  job.csv_sha256 = sha256_hex(bytes);
  job.submitted_by = peer.uid;
  json options = json::object();
  if (!modality.empty()) options["modality"] = modality;
  if (args.value("strict", false)) options["strict"] = true;
  if (args.contains("series_description")) options["series_description"] = args["series_description"];
  if (args.value("skip_existing", false)) options["skip_existing"] = true;
  if (args.value("append", false)) options["append"] = true;
  job.options_json = options.dump();
  job.items.reserve(parsed.rows.size());
  for (const auto& r : parsed.rows) {
    store::NewItem it;
    it.row = r.row;
    it.line = r.line;
    it.kind = kind_name(r.kind);
    it.accession = r.accession;
    it.patient_id = r.patient_id;
    it.study_date = r.study_date;
    it.study_uid = r.study_uid;
    it.modality = r.modality.empty() ? modality : r.modality;
    it.subject = r.subject;
    it.session = r.session;
    job.items.push_back(std::move(it));
  }
  json pre = ctx.hooks.preflight ? ctx.hooks.preflight(args, job.items) : json::object();
  std::int64_t id = ctx.store.create_job(job);
  std::set<int> skip;
  for (const auto& r : pre.value("skip_rows", json::array())) skip.insert(r.get<int>());
  if (!skip.empty()) {
    for (const auto& it : ctx.store.items(id)) {
      if (!skip.count(it.row)) continue;
      store::ItemPatch p;
      p.last_error = "skipped: session " + it.session + " already exists in XNAT";
      ctx.store.transition(it.id, store::ItemState::Queued, store::ItemState::Cancelled,
                           *p.last_error, p);
    }
    ctx.store.refresh_job_state(id);
  }
  log::Fields fields;
  fields.job_id = id;
  fields.pacs = pacs;
  fields.project = project;
  log::info(fields, "job " + std::to_string(id) + " queued: " + std::to_string(job.items.size()) +
                        " rows from " + csv_name + " (uid " + std::to_string(peer.uid) + ")");
  if (ctx.hooks.wake) ctx.hooks.wake();
  const std::size_t count = job.items.size();
  const std::string sha256 = job.csv_sha256;
  job = store::NewJob{};
  parsed = intake::Result{};
  malloc_trim(0);  // a 100k-row submit briefly holds the CSV several times over; give it back
  return json{{"job", id}, {"items", count}, {"sha256", sha256},
              {"skipped", skip.size()}, {"warnings", pre.value("warnings", json::array())}};
}

json control(Context& ctx, const json& args, const std::string& what) {
  std::int64_t id = job_id_arg(args);
  store::Job job = require_job(ctx.store, id);
  json out{{"job", id}};
  if (what == "pause" || what == "resume") {
    if (job.state != store::JobState::Active) {
      throw CommandError(code::refused, "job " + std::to_string(id) + " is " +
                                            std::string(store::to_string(job.state)) +
                                            "; only active jobs can be paused or resumed");
    }
    ctx.store.set_paused(id, what == "pause");
    out["paused"] = what == "pause";
  } else if (what == "cancel") {
    out["cancelled"] = ctx.store.cancel_job(id);
  } else if (what == "retry") {
    out["requeued"] = ctx.store.retry_job(id);
  }
  if (ctx.hooks.wake) ctx.hooks.wake();
  return out;
}

}  // namespace

json job_summary_json(const store::JobSummary& s) {
  json counts = json::object();
  for (auto st : store::all_states()) {
    auto it = s.counts.find(st);
    counts[std::string(store::to_string(st))] = it == s.counts.end() ? 0 : it->second;
  }
  json failures = json::array();
  for (const auto& f : s.latest_failures) failures.push_back(item_json(f));
  const auto& j = s.job;
  return json{{"job", j.id},
              {"project", j.project},
              {"pacs", j.pacs},
              {"csv_name", j.csv_name},
              {"csv_sha256", j.csv_sha256},
              {"submitted_by", j.submitted_by},
              {"created_at", j.created_at},
              {"state", std::string(store::to_string(j.state))},
              {"paused", j.paused},
              {"options", json::parse(j.options_json.empty() ? "{}" : j.options_json, nullptr, false)},
              {"total", s.total},
              {"counts", counts},
              {"instances", {{"expected", s.expected}, {"received", s.received},
                             {"pushed", s.pushed}, {"verified", s.verified}}},
              {"bytes", s.bytes},
              {"latest_failures", failures}};
}

std::string report_csv(const store::Job& job, const std::vector<store::Item>& items) {
  std::ostringstream out;
  out << "row,line,kind,accession,patient_id,study_date,study_uid,subject,session,state,"
         "expected,received,verified,attempts,reason\n";
  for (const auto& it : items) {
    std::string reason = it.state == store::ItemState::Failed ? it.last_error
                         : it.state == store::ItemState::Queued ? it.wait_reason
                                                                : std::string();
    out << it.row << ',' << it.line << ',' << it.kind << ',' << csv_cell(it.accession) << ','
        << csv_cell(it.patient_id) << ',' << csv_cell(it.study_date) << ','
        << csv_cell(it.study_uid) << ','
        << csv_cell(it.subject) << ',' << csv_cell(it.session) << ','
        << store::to_string(it.state) << ',' << it.expected << ',' << it.received << ','
        << it.verified << ',' << it.attempts << ',' << csv_cell(reason) << '\n';
  }
  (void)job;
  return out.str();
}

void register_commands(ipc::Dispatcher& d, Context& ctx) {
  d.add("ping", [max_request = ctx.cfg.limits.max_request_bytes](const json&, const ipc::Peer&) {
    return json{{"pong", true}, {"pid", static_cast<long long>(getpid())},
                {"max_request_bytes", max_request}};
  });
  d.add("submit", [&ctx](const json& a, const ipc::Peer& p) { return submit(ctx, a, p); });
  d.add("status", [&ctx](const json& a, const ipc::Peer&) {
    json out = json::array();
    if (a.contains("job")) {
      std::int64_t id = job_id_arg(a);
      require_job(ctx.store, id);
      json j = job_summary_json(ctx.store.summary(id));
      if (ctx.hooks.job_notes) j["notes"] = ctx.hooks.job_notes(id);
      out.push_back(std::move(j));
    } else {
      for (const auto& job : ctx.store.jobs()) {
        if (job.state != store::JobState::Active && !a.value("all", false)) continue;
        json j = job_summary_json(ctx.store.summary(job.id));
        if (ctx.hooks.job_notes) j["notes"] = ctx.hooks.job_notes(job.id);
        out.push_back(std::move(j));
      }
    }
    return json{{"jobs", out}};
  });
  d.add("list", [&ctx](const json&, const ipc::Peer&) {
    json out = json::array();
    for (const auto& job : ctx.store.jobs()) out.push_back(job_summary_json(ctx.store.summary(job.id)));
    return json{{"jobs", out}};
  });
  d.add("items", [&ctx](const json& a, const ipc::Peer&) {
    std::int64_t id = job_id_arg(a);
    require_job(ctx.store, id);
    json out = json::array();
    for (const auto& it : ctx.store.items(id)) out.push_back(item_json(it));
    return json{{"job", id}, {"items", out}};
  });
  d.add("events", [&ctx](const json& a, const ipc::Peer&) {
    if (!a.contains("item") || !a["item"].is_number_integer()) {
      throw CommandError(code::bad_request, "an item number is required");
    }
    json out = json::array();
    for (const auto& e : ctx.store.events(a["item"].get<std::int64_t>())) {
      out.push_back({{"at", e.at}, {"from", e.from}, {"to", e.to}, {"detail", e.detail}});
    }
    return json{{"item", a["item"]}, {"events", out}};
  });
  d.add("report", [&ctx](const json& a, const ipc::Peer&) {
    std::int64_t id = job_id_arg(a);
    store::Job job = require_job(ctx.store, id);
    return json{{"job", id}, {"csv", report_csv(job, ctx.store.items(id))}};
  });
  for (const char* what : {"cancel", "pause", "resume", "retry"}) {
    std::string w = what;
    d.add(w, [&ctx, w](const json& a, const ipc::Peer&) { return control(ctx, a, w); });
  }
}

}  // namespace p2x::service
