#include "world.hpp"

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "counting_proxy.hpp"
#include "ipc/client.hpp"

namespace p2x::test {

namespace fs = std::filesystem;
using nlohmann::json;

std::string subject_label(const GeneratedStudy& s) {
  return "SUBJ_" + s.spec.patient_id;
}
std::string session_label(const GeneratedStudy& s) {
  return "SESS_" + (s.spec.accession.empty() ? s.spec.patient_id + "_" + s.spec.study_date
                                             : s.spec.accession);
}

World::World(WorldOptions o) : dir_(make_temp_dir("p2x-world")) {
  std::uint16_t our_port = free_port();
  if (!o.studies.empty()) studies_ = generate(o.studies, dir_ + "/data", 7);
  pacs_ = std::make_unique<PacsFixture>(o.pacs, dir_ + "/pacs",
                                        std::vector<MoveDestination>{{"P2XTEST", our_port}});
  pacs_->set_stock(o.stock_pacs);
  if (o.start_pacs) {
    pacs_->start();
    std::vector<std::string> files;
    for (const auto& s : studies_) {
      auto f = s.files();
      files.insert(files.end(), f.begin(), f.end());
    }
    if (!files.empty()) pacs_->load(files);
  }
  std::uint16_t pacs_port = pacs_->port();
  if (o.via_proxy) {
    proxy_ = std::make_unique<CountingProxy>(pacs_->port());
    pacs_port = proxy_->port();
  }
  xnat_ = std::make_unique<XnatStandin>(dir_ + "/xnat", std::vector<std::string>{"admin:admin"},
                                        o.projects, false, o.xnat_args);
  json cfg{{"ae_title", "P2XTEST"},
           {"storage_port", our_port},
           {"pacs",
            {{{"name", "testpacs"},
              {"ae_title", pacs_->ae_title()},
              {"host", "127.0.0.1"},
              {"port", pacs_port},
              {"retrieve", o.retrieve},
              {"max_associations", o.max_associations},
              {"timeouts", {{"connect_s", 3}, {"acse_s", 10}, {"dimse_s", 20}, {"idle_s", 15}}}}}},
           {"xnat", {{"url", xnat_->url()}}},
           {"limits",
            {{"backoff_initial_s", 1},
             {"backoff_max_s", 4},
             {"circuit_failures", 3},
             {"circuit_probe_s", 1},
             {"spool_min_free_mb", 10},
             {"max_attempts", 5}}},
           {"log_level", "debug"}};
  cfg["pacs"][0].merge_patch(o.pacs_entry);
  cfg.merge_patch(o.config);
  daemon_ = std::make_unique<Daemon>(dir_, cfg);
  daemon_->start();
}

World::~World() {
  daemon_.reset();
  xnat_.reset();
  proxy_.reset();
  pacs_.reset();
  remove_tree(dir_);
}

std::string World::write_csv(const std::string& name, const std::string& text) const {
  std::string path = dir_ + "/" + name;
  write_file(path, text);
  return path;
}

std::string World::accession_csv(const std::vector<int>& idx) const {
  std::ostringstream s;
  s << "Accession Number,Subject,Session\n";
  for (int i : idx) {
    const auto& st = studies_.at(static_cast<std::size_t>(i));
    s << st.spec.accession << "," << subject_label(st) << "," << session_label(st) << "\n";
  }
  return s.str();
}

int World::submit(const std::string& csv, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"submit", csv, "--project", "PROJ", "--pacs", "testpacs", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = daemon_->cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out).at("job").get<int>();
}

json World::status(int job) const {
  json r = ipc::call(daemon_->socket(), "status", json{{"job", job}}, 30);
  REQUIRE(r["ok"] == true);
  return r["result"]["jobs"][0];
}

json World::items(int job) const {
  json r = ipc::call(daemon_->socket(), "items", json{{"job", job}}, 30);
  REQUIRE(r["ok"] == true);
  return r["result"]["items"];
}

json World::wait_done(int job, int timeout_s) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  json st;
  while (std::chrono::steady_clock::now() < deadline) {
    st = status(job);
    if (st["state"] != "active") return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  FAIL("job " << job << " still active after " << timeout_s << " s: " << st.dump() << "\n"
              << daemon_->log().substr(daemon_->log().size() > 6000 ? daemon_->log().size() - 6000
                                                                    : 0));
  return st;
}

void World::check_verified_once(int job, const std::vector<int>& idx) const {
  json st = status(job);
  INFO(st.dump(2));
  CHECK(st["counts"]["verified"] == static_cast<int>(idx.size()));
  auto uploads = xnat_->uploads_per_session();
  for (int i : idx) {
    const auto& s = studies_.at(static_cast<std::size_t>(i));
    std::string key = "PROJ/" + subject_label(s) + "/" + session_label(s);
    INFO(key);
    CHECK(uploads[key] == 1);
  }
  for (const auto& it : items(job)) {
    CHECK(it["state"] == "verified");
    CHECK(it["expected"].get<int>() > 0);
    CHECK(it["received"] == it["expected"]);
    CHECK(it["verified"] == it["expected"]);
  }
}

std::vector<std::string> World::spool_files() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(daemon_->state_dir() + "/spool", ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    // The spool's boot marks (pipeline/spool.hpp) belong to the spool, not to a study.
    if (it.depth() == 0 && it->path().filename().string().rfind(".boot-", 0) == 0) continue;
    out.push_back(it->path().string());
  }
  return out;
}

std::string World::spool_item_dir(std::int64_t item_id) const {
  return daemon_->state_dir() + "/spool/" + std::to_string(item_id);
}

std::vector<std::string> World::spool_item_files(const std::vector<std::int64_t>& item_ids) const {
  std::vector<std::string> out;
  for (std::int64_t id : item_ids) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(spool_item_dir(id), ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;  // the directory went away while we read it
      if (it->is_regular_file(ec)) out.push_back(it->path().string());
    }
  }
  return out;
}

std::vector<std::int64_t> World::item_ids(int job) const {
  std::vector<std::int64_t> ids;
  for (const auto& it : items(job)) ids.push_back(it["id"].get<std::int64_t>());
  return ids;
}

}  // namespace p2x::test
