// config/pacs_section: the "pacs" array — PACS nodes, their timeouts and availability windows.
#include "config/sections.hpp"
#include "config/values.hpp"
#include "text/text.hpp"

#include <algorithm>
#include <array>

namespace p2x::config::detail {
namespace {

constexpr std::array<const char*, 7> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
constexpr std::array<const char*, 7> kLongDayNames = {"sunday",   "monday", "tuesday", "wednesday",
                                                      "thursday", "friday", "saturday"};

// Adds the days named by one string ("mon", "Monday", "weekdays", "weekend", "all");
// false if the string names none.
bool add_named_days(std::string name, std::vector<int>& days) {
  name = text::to_lower(name);
  if (name == "all") {
    for (int d = 0; d < 7; ++d) days.push_back(d);
    return true;
  }
  if (name == "weekdays") {
    for (int d = 1; d <= 5; ++d) days.push_back(d);
    return true;
  }
  if (name == "weekend") {
    days.push_back(0);
    days.push_back(6);
    return true;
  }
  for (int d = 0; d < 7; ++d) {
    if (name == kDayNames[static_cast<std::size_t>(d)] ||
        name == kLongDayNames[static_cast<std::size_t>(d)]) {
      days.push_back(d);
      return true;
    }
  }
  return false;
}

const char* const kDayWhat =
    "a day (0-6 with 0 = Sunday, \"sun\"..\"sat\", \"weekdays\", "
    "\"weekend\" or \"all\")";

std::vector<int> read_days(const Node& node) {
  std::vector<int> days;
  if (node.json().is_string()) {
    if (!add_named_days(node.json().get<std::string>(), days)) node.expected(kDayWhat);
  } else if (node.json().is_array()) {
    for (const Node& element : node.as_array(true)) {
      if (element.json().is_number()) {
        days.push_back(static_cast<int>(element.as_int(0, 6)));
      } else if (!element.json().is_string() ||
                 !add_named_days(element.json().get<std::string>(), days)) {
        element.expected(kDayWhat);
      }
    }
  } else {
    node.expected(std::string("a non-empty array of days or ") + kDayWhat);
  }
  std::sort(days.begin(), days.end());
  days.erase(std::unique(days.begin(), days.end()), days.end());
  return days;
}

Window read_window(const Node& node, int default_max_associations) {
  ObjectReader r(node, {"days", "start", "end", "max_associations"});
  Window w;
  w.days = {0, 1, 2, 3, 4, 5, 6};
  if (auto days = r.optional("days")) w.days = read_days(*days);
  if (auto start = r.optional("start")) w.start_min = read_time_of_day(*start);
  if (auto end = r.optional("end")) w.end_min = read_time_of_day(*end);
  if (w.start_min >= w.end_min) {
    Node where = r.has("end") ? r.required("end") : r.required("start");
    where.fail(
        "window start must be before its end (split a window that crosses midnight "
        "into two)");
  }
  w.max_associations = default_max_associations;
  r.read_int("max_associations", w.max_associations, 0, 64);
  return w;
}

Timeouts read_timeouts(const Node& node) {
  ObjectReader r(node, {"connect_s", "acse_s", "dimse_s", "idle_s"});
  Timeouts t;
  r.read_int("connect_s", t.connect_s, 1, 3600);
  r.read_int("acse_s", t.acse_s, 1, 3600);
  r.read_int("dimse_s", t.dimse_s, 1, 86400);
  r.read_int("idle_s", t.idle_s, 1, 86400);
  return t;
}

PacsNode read_pacs_node(const Node& node) {
  ObjectReader r(
      node, {"name", "ae_title", "storing_ae_titles", "host", "port", "retrieve",
             "max_associations", "timeouts", "windows", "skip_sop_classes", "parallel_series"});
  PacsNode p;
  p.name = read_short_name(r.required("name"));
  p.ae_title = read_ae_title(r.required("ae_title"));
  if (auto storing = r.optional("storing_ae_titles")) {
    for (const Node& ae : storing->as_array(true)) p.storing_ae_titles.push_back(read_ae_title(ae));
  } else {
    p.storing_ae_titles.push_back(p.ae_title);
  }
  p.host = read_host(r.required("host"));
  p.port = static_cast<std::uint16_t>(r.required("port").as_int(1, 65535));
  if (auto retrieve = r.optional("retrieve")) {
    p.retrieve =
        retrieve->as_enum({"move", "get"}) == "get" ? RetrieveMethod::Get : RetrieveMethod::Move;
  }
  r.read_int("max_associations", p.max_associations, 1, 64);
  r.read_bool("parallel_series", p.parallel_series);
  if (auto timeouts = r.optional("timeouts")) p.timeouts = read_timeouts(*timeouts);
  if (auto windows = r.optional("windows")) p.windows = read_windows(*windows, p.max_associations);
  if (auto skip = r.optional("skip_sop_classes")) {
    for (const Node& uid : skip->as_array(false)) p.skip_sop_classes.push_back(read_uid(uid));
  }
  return p;
}

}  // namespace

std::vector<Window> read_windows(const Node& node, int default_max_associations) {
  std::vector<Window> windows;
  std::vector<Node> elements = node.as_array(false);
  for (std::size_t i = 0; i < elements.size(); ++i) {
    Window w = read_window(elements[i], default_max_associations);
    for (std::size_t j = 0; j < windows.size(); ++j) {
      const Window& other = windows[j];
      bool overlap_in_time = w.start_min < other.end_min && other.start_min < w.end_min;
      for (int day : w.days) {
        if (overlap_in_time &&
            std::find(other.days.begin(), other.days.end(), day) != other.days.end()) {
          elements[i].fail("overlaps windows[" + std::to_string(j) + "] on " +
                           kDayNames[static_cast<std::size_t>(day)]);
        }
      }
    }
    windows.push_back(std::move(w));
  }
  return windows;
}

std::vector<PacsNode> read_pacs_list(const Node& node) {
  if (!node.json().is_array() || node.json().empty()) {
    node.expected("a non-empty array of PACS objects");
  }
  std::vector<PacsNode> list;
  std::vector<Node> elements = node.as_array(true);
  for (std::size_t i = 0; i < elements.size(); ++i) {
    PacsNode p = read_pacs_node(elements[i]);
    for (std::size_t j = 0; j < list.size(); ++j) {
      if (list[j].name == p.name) {
        elements[i].child("name").fail("duplicate PACS name \"" + p.name + "\" (also pacs[" +
                                       std::to_string(j) + "])");
      }
    }
    list.push_back(std::move(p));
  }
  return list;
}

}  // namespace p2x::config::detail
