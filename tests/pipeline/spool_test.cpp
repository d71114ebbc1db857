// The spool marks (pipeline/spool.hpp): when the spool's files can be trusted after a restart.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "pipeline/spool.hpp"

using namespace p2x::pipeline;
using p2x::test::make_temp_dir;
using p2x::test::remove_tree;
using p2x::test::write_file;
namespace fs = std::filesystem;

namespace {
struct Dir {
  std::string path = make_temp_dir("p2x-spool");
  ~Dir() { remove_tree(path); }
};
}  // namespace

TEST_CASE("spool marks tell a restart in the same boot or after a clean stop from a power loss",
          "[spool]") {
  Dir spool;
  CHECK(spool_survived(spool.path, "A"));  // never marked (new, or from a version that fsynced)

  mark_spool_in_use(spool.path, "A");
  CHECK(spool_survived(spool.path, "A"));  // kill -9 and restart: the page cache kept the files
  CHECK_FALSE(spool_survived(spool.path, "B"));  // new boot, no clean stop: power loss

  mark_spool_synced(spool.path, "A");
  CHECK(spool_survived(spool.path, "B"));  // clean stop (syncfs) before the reboot

  mark_spool_in_use(spool.path, "B");  // the next run clears the synced mark
  CHECK(spool_survived(spool.path, "B"));
  CHECK_FALSE(spool_survived(spool.path, "C"));
  CHECK_FALSE(fs::exists(spool.path + "/.boot-synced"));

  // A synced mark of an older boot does not vouch for a later one.
  mark_spool_synced(spool.path, "B");
  mark_spool_in_use(spool.path, "C");
  write_file(spool.path + "/.boot-synced", "B\n");
  CHECK_FALSE(spool_survived(spool.path, "D"));
}

TEST_CASE("discard_spool removes the item folders only", "[spool]") {
  Dir spool;
  fs::create_directories(spool.path + "/12/sub");
  write_file(spool.path + "/12/a.dcm", "x");
  fs::create_directories(spool.path + "/7");
  fs::create_directories(spool.path + "/.incoming");
  fs::create_directories(spool.path + "/notes");
  mark_spool_in_use(spool.path, "A");
  CHECK(discard_spool(spool.path) == 2);
  CHECK_FALSE(fs::exists(spool.path + "/12"));
  CHECK_FALSE(fs::exists(spool.path + "/7"));
  CHECK(fs::exists(spool.path + "/.incoming"));
  CHECK(fs::exists(spool.path + "/notes"));
  CHECK(spool_survived(spool.path, "A"));
  CHECK_THROWS_WITH(discard_spool(spool.path + "/missing"),
                    Catch::Contains("cannot list the spool " + spool.path + "/missing"));
}

TEST_CASE("read_boot_id trims the id and names a file it cannot use", "[spool]") {
  Dir d;
  write_file(d.path + "/id", "5c1d-77\n");
  CHECK(read_boot_id(d.path + "/id") == "5c1d-77");
  write_file(d.path + "/empty", "\n");
  CHECK_THROWS_WITH(read_boot_id(d.path + "/empty"), Catch::Contains(d.path + "/empty is empty"));
  CHECK_THROWS_WITH(read_boot_id(d.path + "/none"),
                    Catch::Contains("cannot read the boot id from " + d.path + "/none"));
  CHECK_FALSE(read_boot_id("/proc/sys/kernel/random/boot_id").empty());
}

TEST_CASE("an item's quarantine goes with its spool, and only then", "[spool]") {
  Dir spool;
  fs::create_directories(spool.path + "/3");
  fs::create_directories(spool.path + "/4");
  fs::create_directories(spool.path + "/.quarantine/3");
  fs::create_directories(spool.path + "/.quarantine/4");
  fs::create_directories(spool.path + "/.quarantine/9");  // its item folder is already gone
  write_file(spool.path + "/.quarantine/3/x.dcm", "x");
  CHECK(item_spool_dir(spool.path, 3) == spool.path + "/3");
  remove_item_spool(spool.path, 3);
  CHECK_FALSE(fs::exists(spool.path + "/3"));
  CHECK_FALSE(fs::exists(spool.path + "/.quarantine/3"));
  CHECK(fs::exists(spool.path + "/.quarantine/4"));
  remove_item_spool(spool.path, 3);  // nothing left: no error
  mark_spool_in_use(spool.path, "A");
  CHECK(discard_spool(spool.path) == 1);
  CHECK_FALSE(fs::exists(spool.path + "/.quarantine"));
}

TEST_CASE(
    "Spool owns the layout: item folders, staging, the quarantine (also the Storage SCP's "
    "as its sink), room, removal",
    "[spool]") {
  Dir dir;
  const Spool spool(dir.path);
  CHECK(spool.item_dir(7) == dir.path + "/7");
  CHECK(spool.quarantine_dir(7) == dir.path + "/.quarantine/7");
  CHECK(spool.staging_dir() == dir.path + "/.incoming");
  const std::string item = spool.make_item_dir(7);
  write_file(item + "/a.dcm", "aaaa");
  write_file(item + "/b.dcm", "bb");
  write_file(item + "/.p2x-c.part", "c");
  const Spool::Held held = spool.held(7);
  CHECK(held.files == 2);
  CHECK(held.bytes == 7);
  // Validation's quarantine and the SCP's (through the sink interface) land in one place.
  const std::string kept = spool.quarantine(7, item + "/a.dcm", "not on the PACS");
  CHECK(kept == dir.path + "/.quarantine/7/a.dcm");
  write_file(dir.path + "/copy", "other");
  const p2x::pacs::ReceivedSink& sink = spool;
  CHECK(sink.keep_apart(dir.path + "/copy", item + "/", "b.dcm", "second copy differs") ==
        dir.path + "/.quarantine/7/b.dcm");
  CHECK_THAT(spool.quarantine_note(7),
             Catch::Contains("quarantined 2 instance(s) in " + dir.path + "/.quarantine/7") &&
                 Catch::Contains("not on the PACS") && Catch::Contains("second copy differs"));
  // Room: at spool_max_mb nothing more is retrieved.
  p2x::config::Limits lim;
  lim.spool_min_free_mb = 0;
  lim.spool_max_mb = 0;
  CHECK(spool.lacks_room(lim).empty());
  write_file(item + "/big.dcm", std::string(1024 * 1024 + 1, 'x'));
  lim.spool_max_mb = 1;
  CHECK_THAT(spool.lacks_room(lim), Catch::Contains("at limits.spool_max_mb (1 MB)"));
  spool.remove(7);
  CHECK_FALSE(fs::exists(item));
  CHECK_FALSE(fs::exists(spool.quarantine_dir(7)));
}

TEST_CASE(
    "Spool clean-up: a killed run's staging and unfinished files at start-up, finished "
    "items' folders always, open items' folders never",
    "[spool]") {
  Dir dir;
  const Spool spool(dir.path);
  fs::create_directories(spool.staging_dir());
  write_file(spool.staging_dir() + "/.p2x-x.part", "x");
  write_file(spool.make_item_dir(1) + "/.p2x-y.part", "y");  // open item, crash leftover
  write_file(spool.item_dir(1) + "/y.dcm", "y");
  write_file(spool.make_item_dir(2) + "/z.dcm", "z");  // a finished item
  const auto finished = [](std::int64_t id) { return id == 2; };
  spool.clean(false, finished);  // a periodic clean: leftovers stay (a transfer may be writing)
  CHECK(fs::exists(spool.staging_dir() + "/.p2x-x.part"));
  CHECK(fs::exists(spool.item_dir(1) + "/.p2x-y.part"));
  CHECK_FALSE(fs::exists(spool.item_dir(2)));
  spool.clean(true, finished);
  CHECK(fs::is_empty(spool.staging_dir()));
  CHECK_FALSE(fs::exists(spool.item_dir(1) + "/.p2x-y.part"));
  CHECK(fs::exists(spool.item_dir(1) + "/y.dcm"));
}
