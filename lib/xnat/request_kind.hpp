// xnat/request_kind: names the kind of an XNAT request from its target, for /metrics (the
// latency histogram's "kind" label): few, fixed values whatever the project or label.
#pragma once

#include <string>

namespace p2x::xnat::detail {

// "login", "import", "prearchive", "settings" (XAPI), "session" (experiments, scans, files),
// "project" (the project and its settings), "projects" (the listing), or "other". `target` is
// the request's path and query as sent (a URL prefix such as /xnat is allowed).
std::string request_kind(const std::string& target);

}  // namespace p2x::xnat::detail
