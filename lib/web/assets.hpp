// web/assets: the static files of the web door (lib/web/assets/), compiled into the binary by
// embed_assets.cmake: hospital networks reach no CDN, and nothing is read from disk at run time,
// so no URL can name a file outside this table.
#pragma once

#include <string_view>

namespace p2x::web {

struct Asset {
  std::string_view name;  // e.g. "app.js"
  std::string_view content_type;
  std::string_view body;
};

// The asset called exactly `name`, or nullptr.
const Asset* find_asset(std::string_view name);

}  // namespace p2x::web
