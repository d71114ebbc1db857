// config/sections: internal readers for the config file's sections (one function per section).
#pragma once

#include "config/config.hpp"
#include "config/json_reader.hpp"

#include <vector>

namespace p2x::config::detail {

std::vector<PacsNode> read_pacs_list(const Node& node);  // "pacs": non-empty array
std::vector<Window> read_windows(const Node& node, int default_max_associations);
Xnat read_xnat(const Node& node);
Paths read_paths(const Node& node);
Limits read_limits(const Node& node);
Web read_web(const Node& node);  // "web": the HTTP listener (web_section.cpp)

}  // namespace p2x::config::detail
