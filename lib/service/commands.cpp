#include "service/commands.hpp"

#include <malloc.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <sstream>

#include "intake/intake.hpp"
#include "log/log.hpp"
#include "jobopts/jobopts.hpp"
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

// Who asked, for the log: the XNAT user at the web door, else the socket peer's uid.
std::string who(const ipc::Peer& peer) {
  return peer.web_user.empty() ? "uid " + std::to_string(peer.uid)
                               : "XNAT user " + peer.web_user + " on the web";
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
    throw CommandError(code::not_found, "no job " + std::to_string(id) + " (see `pacs2xnat list`)");
  }
  return *job;
}

json item_json(const store::Item& it) {
  return json{{"id", it.id},
              {"row", it.row},
              {"line", it.line},
              {"kind", domain::to_string(it.kind)},
              {"accession", it.accession},
              {"patient_id", it.patient_id},
              {"study_date", it.study_date},
              {"study_uid", it.study_uid},
              {"subject", it.subject},
              {"session", it.session},
              {"state", std::string(store::to_string(it.state))},
              {"attempts", it.attempts},
              {"last_error", it.last_error},
              {"retryable", it.retryable},
              {"wait_reason", it.wait_reason},
              {"next_attempt_at", it.next_attempt_at},
              {"expected", it.expected},
              {"received", it.received},
              {"pushed", it.pushed},
              {"verified", it.verified},
              {"bytes", it.bytes},
              {"updated_at", it.updated_at}};
}

// A report cell: quoted where needed, formula-like values neutralised (OWASP CSV injection).
std::string csv_cell(const std::string& v) {
  return text::csv_field(v);
}

// A submit's arguments (jobopts' schema, every one checked before anything else happens) and
// the CSV's bytes.
struct SubmitRequest : jobopts::SubmitArgs {
  std::string bytes;
};

// Refuses unknown keys and values of the wrong type or out of range, naming the option.
SubmitRequest parse_submit(const json& args) {
  SubmitRequest r;
  try {
    static_cast<jobopts::SubmitArgs&>(r) = jobopts::submit_args_from(args);
  } catch (const jobopts::OptionError& e) {
    throw CommandError(code::bad_request,
                       std::string(e.kind == jobopts::OptionError::Value ? "submit option " : "") +
                           e.what() + "; nothing was queued");
  }
  if (r.csv_name.empty()) r.csv_name = "stdin";
  r.bytes = ipc::bytes_argument(args, "csv_base64");
  return r;
}

// The same CSV into the same project while the job made from it is still active: most likely
// a resubmission after a CLI that died before it saw the answer.
void refuse_duplicate(Context& ctx, const SubmitRequest& r, const std::string& sha256) {
  if (r.allow_duplicate) return;
  const auto first = ctx.store.active_job_with_csv(r.project, sha256);
  if (!first) return;
  const std::string id = std::to_string(first->id);
  throw CommandError(code::refused, r.csv_name + " (sha256 " + sha256.substr(0, 12) +
                                        "...) was already "
                                        "submitted to project " +
                                        r.project + " as job " + id + " (from " + first->csv_name +
                                        "), which is still active; nothing was queued. See "
                                        "`pacs2xnat status " +
                                        id +
                                        "`; to queue it a second time anyway, submit "
                                        "again with --allow-duplicate");
}

store::NewJob make_job(const SubmitRequest& r, const intake::Result& parsed,
                       const std::string& sha256, const ipc::Peer& peer) {
  store::NewJob job;
  job.project = r.project;
  job.pacs = r.pacs;
  job.csv_name = r.csv_name;
  job.csv_sha256 = sha256;
  job.submitted_by = peer.uid;
  job.submitted_user = peer.web_user;
  job.options_json = jobopts::to_json(r.options).dump();
  job.items.reserve(parsed.rows.size());
  for (const auto& row : parsed.rows) {
    store::NewItem it;
    it.row = row.row;
    it.line = row.line;
    it.kind = row.kind;
    it.accession = row.accession;
    it.patient_id = row.patient_id;
    it.study_date = row.study_date;
    it.study_uid = row.study_uid;
    it.modality = row.modality.empty() ? r.options.modality : row.modality;
    it.subject = row.subject;
    it.session = row.session;
    job.items.push_back(std::move(it));
  }
  return job;
}

void check_target(const Context& ctx, const SubmitRequest& r) {
  if (!text::is_valid_label(r.project)) {
    throw CommandError(code::refused,
                       "project \"" + r.project.substr(0, 64) +
                           "\" is not a valid XNAT project ID (letters, digits, _ and -)");
  }
  if (!ctx.cfg.find_pacs(r.pacs)) {
    std::string known;
    for (const auto& p : ctx.cfg.pacs) known += (known.empty() ? "" : ", ") + p.name;
    throw CommandError(code::refused, "unknown PACS \"" + r.pacs.substr(0, 64) +
                                          "\"; configured PACS nodes: " + known);
  }
}

// Records the rows the pre-flight skipped (their sessions already exist in XNAT).
std::size_t skip_rows(Context& ctx, std::int64_t id, const json& pre) {
  std::set<int> skip;
  for (const auto& r : pre.value("skip_rows", json::array())) skip.insert(r.get<int>());
  if (skip.empty()) return 0;
  for (const auto& it : ctx.store.items(id)) {
    if (!skip.count(it.row)) continue;
    store::ItemPatch p;
    p.last_error = "skipped: session " + it.session + " already exists in XNAT";
    ctx.store.transition(it.id, store::ItemState::Queued, store::ItemState::Cancelled,
                         *p.last_error, p);
  }
  ctx.store.refresh_job_state(id);
  return skip.size();
}

// Checks everything, asks XNAT (pre-flight), then stores the job in one transaction. The
// duplicate check is repeated under `create_lock` so two identical submits cannot both pass.
json submit(Context& ctx, std::mutex& create_lock, const json& args, const ipc::Peer& peer) {
  const SubmitRequest request = parse_submit(args);
  check_target(ctx, request);
  intake::Result parsed = intake::parse_csv(request.bytes);
  if (!parsed.ok()) {
    std::string msg = request.csv_name + ": " + std::to_string(parsed.problems.size()) +
                      " problem(s); nothing was queued:";
    for (const auto& p : parsed.problems)
      msg += "\n  " + request.csv_name + ": " + intake::format(p);
    throw CommandError(code::refused, msg);
  }
  const std::string sha256 = sha256_hex(request.bytes);
  refuse_duplicate(ctx, request, sha256);
  store::NewJob job = make_job(request, parsed, sha256, peer);
  json pre = ctx.hooks.preflight ? ctx.hooks.preflight(args, job.items) : json::object();
  std::int64_t id = 0;
  {
    std::lock_guard<std::mutex> lock(create_lock);
    refuse_duplicate(ctx, request, sha256);
    id = ctx.store.create_job(job);
  }
  const std::size_t skipped = skip_rows(ctx, id, pre);
  log::Fields fields;
  fields.job_id = id;
  fields.pacs = request.pacs;
  fields.project = request.project;
  log::info(fields, "job " + std::to_string(id) + " queued: " + std::to_string(job.items.size()) +
                        " rows from " + request.csv_name + " (" + who(peer) + ")");
  if (ctx.hooks.wake) ctx.hooks.wake();
  const std::size_t count = job.items.size();
  job = store::NewJob{};
  parsed = intake::Result{};
  malloc_trim(0);  // a 100k-row submit briefly holds the CSV several times over; give it back
  return json{{"job", id},
              {"items", count},
              {"sha256", sha256},
              {"skipped", skipped},
              {"warnings", pre.value("warnings", json::array())},
              {"checks", pre.value("checks", json::array())}};
}

json control(Context& ctx, const json& args, const std::string& what, const ipc::Peer& peer) {
  std::int64_t id = job_id_arg(args);
  store::Job job = require_job(ctx.store, id);
  log::Fields fields;
  fields.job_id = id;
  fields.project = job.project;
  log::info(fields, what + " of job " + std::to_string(id) + " asked by " + who(peer));
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

// A job's items: all of them, or one page ("offset", "limit" up to 1000) in CSV row order,
// optionally only those in "state".
json items(Context& ctx, const json& a) {
  const std::int64_t id = job_id_arg(a);
  require_job(ctx.store, id);
  json out = json::array();
  if (!a.contains("limit") && !a.contains("offset") && !a.contains("state")) {
    for (const auto& it : ctx.store.items(id)) out.push_back(item_json(it));
    return json{{"job", id}, {"items", out}};
  }
  const auto number = [&a](const char* key, std::int64_t fallback, std::int64_t max) {
    if (!a.contains(key)) return fallback;
    if (!a[key].is_number_integer() || a[key].get<std::int64_t>() < 0 ||
        a[key].get<std::int64_t>() > max) {
      throw CommandError(code::bad_request, std::string("\"") + key + "\" must be an integer 0.." +
                                                std::to_string(max));
    }
    return a[key].get<std::int64_t>();
  };
  const std::int64_t limit = number("limit", 100, 1000);
  const std::int64_t offset = number("offset", 0, std::int64_t{1} << 40);
  std::optional<store::ItemState> state;
  if (a.contains("state")) {
    state =
        a["state"].is_string() ? store::parse_state(a["state"].get<std::string>()) : std::nullopt;
    if (!state) throw CommandError(code::bad_request, "\"state\" must be an item state");
  }
  for (const auto& it : ctx.store.items_page(id, state, offset, limit))
    out.push_back(item_json(it));
  return json{{"job", id}, {"offset", offset}, {"limit", limit}, {"items", out}};
}

// One item's series as the C-FIND reported them, with what arrived of each.
json item_series(Context& ctx, const json& a) {
  if (!a.contains("item") || !a["item"].is_number_integer()) {
    throw CommandError(code::bad_request, "an item number is required");
  }
  const std::int64_t id = a["item"].get<std::int64_t>();
  const auto item = ctx.store.item(id);
  if (!item) throw CommandError(code::not_found, "no item " + std::to_string(id));
  json out = json::array();
  for (const auto& s : ctx.store.series(id)) {
    out.push_back({{"series_uid", s.series_uid},
                   {"modality", s.modality},
                   {"description", s.description},
                   {"number", s.number},
                   {"expected", s.expected},
                   {"received", s.received}});
  }
  return json{{"item", id},
              {"job", item->job_id},
              {"state", std::string(store::to_string(item->state))},
              {"series", out}};
}

json problem_json(const intake::Problem& p) {
  return json{{"line", p.line},
              {"column", p.column},
              {"column_name", p.column_name},
              {"message", p.message},
              {"text", intake::format(p)}};
}

// What `pacs2xnat check` says of a CSV: every problem and warning with its line and column.
json check_csv(const json& args) {
  const std::string bytes = ipc::bytes_argument(args, "csv_base64");
  const intake::Result parsed = intake::parse_csv(bytes);
  json problems = json::array(), warnings = json::array();
  for (const auto& p : parsed.problems) problems.push_back(problem_json(p));
  for (const auto& w : parsed.warnings) warnings.push_back(problem_json(w));
  return json{{"ok", parsed.ok()},
              {"rows", parsed.rows.size()},
              {"problems", problems},
              {"warnings", warnings}};
}

}  // namespace

namespace {

// "3 verified session(s) awaiting review in the prearchive of project P (XNAT: Upload >
// Prearchive)", or "" when the job's sessions go to the archive.
std::string review_note(const store::JobSummary& s) {
  if (s.job.destination != domain::Destination::Prearchive) return {};
  const auto v = s.counts.find(store::ItemState::Verified);
  const std::int64_t n = v == s.counts.end() ? 0 : v->second;
  return std::to_string(n) + " verified session(s) " + kAwaitingReview + " of project " +
         s.job.project + " (XNAT: Upload > Prearchive; archive them there after review)";
}

}  // namespace

namespace {
// Whether the job was submitted with --no-anonymisation-check (options it cannot read: no).
bool anonymisation_waived(const json& options) {
  try {
    return jobopts::job_options_from(options).no_anonymisation_check;
  } catch (const jobopts::OptionError&) {
    return false;
  }
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
  const json options = json::parse(j.options_json.empty() ? "{}" : j.options_json, nullptr, false);
  const bool waived = anonymisation_waived(options);
  return json{{"job", j.id},
              {"project", j.project},
              {"pacs", j.pacs},
              {"csv_name", j.csv_name},
              {"csv_sha256", j.csv_sha256},
              {"submitted_by", j.submitted_by},
              {"submitted_user", j.submitted_user},
              {"created_at", j.created_at},
              {"state", std::string(store::to_string(j.state))},
              {"paused", j.paused},
              {"options", options},
              // Where the sessions go ("" until the first push); the anonymisation override.
              {"destination", j.destination ? domain::to_string(*j.destination) : ""},
              {"anonymisation_check", waived ? "waived (--no-anonymisation-check)" : "required"},
              {"total", s.total},
              {"counts", counts},
              {"instances",
               {{"expected", s.expected},
                {"received", s.received},
                {"pushed", s.pushed},
                {"verified", s.verified}}},
              {"bytes", s.bytes},
              {"latest_failures", failures},
              {"review", review_note(s)}};
}

std::string report_csv(const store::Job& job, const std::vector<store::Item>& items) {
  std::ostringstream out;
  out << "row,line,kind,accession,patient_id,study_date,study_uid,subject,session,state,"
         "expected,received,verified,attempts,reason\n";
  for (const auto& it : items) {
    std::string reason = it.state == store::ItemState::Failed   ? it.last_error
                         : it.state == store::ItemState::Queued ? it.wait_reason
                         : it.state == store::ItemState::Verified &&
                                 job.destination == domain::Destination::Prearchive
                             ? std::string(kAwaitingReview)
                             : std::string();
    out << it.row << ',' << it.line << ',' << domain::to_string(it.kind) << ','
        << csv_cell(it.accession) << ',' << csv_cell(it.patient_id) << ','
        << csv_cell(it.study_date) << ',' << csv_cell(it.study_uid) << ',' << csv_cell(it.subject)
        << ',' << csv_cell(it.session) << ',' << store::to_string(it.state) << ',' << it.expected
        << ',' << it.received << ',' << it.verified << ',' << it.attempts << ',' << csv_cell(reason)
        << '\n';
  }
  return out.str();
}

void register_commands(ipc::Dispatcher& d, Context& ctx) {
  const auto local = [&d](const std::string& cmd, ipc::Handler handler) {
    d.add(cmd, std::move(handler), ipc::Lane::Local);
  };
  local("ping", [max_request = ctx.cfg.limits.max_request_bytes](const json&, const ipc::Peer&) {
    return json{{"pong", true},
                {"pid", static_cast<long long>(getpid())},
                {"max_request_bytes", max_request}};
  });
  // Submit waits on XNAT (its pre-flight): Lane::Remote. Everything else answers from the
  // store: Lane::Local, never queued behind a slow XNAT.
  auto create_lock = std::make_shared<std::mutex>();
  d.add(
      "submit",
      [&ctx, create_lock](const json& a, const ipc::Peer& p) {
        return submit(ctx, *create_lock, a, p);
      },
      ipc::Lane::Remote);
  local("status", [&ctx](const json& a, const ipc::Peer&) {
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
  local("list", [&ctx](const json&, const ipc::Peer&) {
    json out = json::array();
    for (const auto& job : ctx.store.jobs())
      out.push_back(job_summary_json(ctx.store.summary(job.id)));
    return json{{"jobs", out}};
  });
  local("items", [&ctx](const json& a, const ipc::Peer&) { return items(ctx, a); });
  // Parsing a CSV of up to limits.max_request_bytes takes a while: not on the store's lane.
  d.add(
      "check", [](const json& a, const ipc::Peer&) { return check_csv(a); }, ipc::Lane::Remote);
  local("series", [&ctx](const json& a, const ipc::Peer&) { return item_series(ctx, a); });
  local("events", [&ctx](const json& a, const ipc::Peer&) {
    if (!a.contains("item") || !a["item"].is_number_integer()) {
      throw CommandError(code::bad_request, "an item number is required");
    }
    json out = json::array();
    for (const auto& e : ctx.store.events(a["item"].get<std::int64_t>())) {
      out.push_back({{"at", e.at}, {"from", e.from}, {"to", e.to}, {"detail", e.detail}});
    }
    return json{{"item", a["item"]}, {"events", out}};
  });
  local("report", [&ctx](const json& a, const ipc::Peer&) {
    std::int64_t id = job_id_arg(a);
    store::Job job = require_job(ctx.store, id);
    return json{{"job", id}, {"csv", report_csv(job, ctx.store.items(id))}};
  });
  for (const char* what : {"cancel", "pause", "resume", "retry"}) {
    std::string w = what;
    local(w, [&ctx, w](const json& a, const ipc::Peer& p) { return control(ctx, a, w, p); });
  }
}

}  // namespace p2x::service
