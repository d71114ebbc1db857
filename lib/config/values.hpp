// config/values: internal validators for the config module's value kinds (AE titles, host
// names, UIDs, times of day, paths). Each reads one Node and throws ConfigError with its path.
#pragma once

#include "config/json_reader.hpp"

#include <string>

namespace p2x::config::detail {

// DICOM AE title: 1..16 characters, not all spaces, no backslash or control characters.
std::string read_ae_title(const Node& node);
// Host name or IP address literal: non-empty, at most 253 characters, no spaces or controls.
std::string read_host(const Node& node);
// DICOM UID by the one rule of text::is_valid_uid (digits and dots, 1-64, no empty component).
std::string read_uid(const Node& node);
// "HH:MM" between 00:00 and 24:00 -> minutes after midnight.
int read_time_of_day(const Node& node);
// Absolute path; `max_len` > 0 limits the length (Unix socket paths).
std::string read_absolute_path(const Node& node, std::size_t max_len = 0);
// A PACS's short name as used on the command line: [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
std::string read_short_name(const Node& node);
// http(s)://host[:port][/path], trailing slashes removed, "/data" suffix rejected.
std::string read_base_url(const Node& node);

// Whether `host` is this machine: "localhost" (or *.localhost), this host's own name, a
// loopback or unspecified address or an address of one of its interfaces. Other names are not
// looked up (no DNS while a configuration is read): false.
bool is_local_host(const std::string& host);

}  // namespace p2x::config::detail
