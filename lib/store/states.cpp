// store: the item state machine (names, parsing, legal transitions).
#include "store/store.hpp"

namespace p2x::store {

namespace {
struct StateName {
  ItemState state;
  std::string_view name;
};
constexpr StateName kStates[] = {
    {ItemState::Queued, "queued"},         {ItemState::Querying, "querying"},
    {ItemState::Retrieving, "retrieving"}, {ItemState::Retrieved, "retrieved"},
    {ItemState::Validating, "validating"}, {ItemState::Validated, "validated"},
    {ItemState::Pushing, "pushing"},       {ItemState::Pushed, "pushed"},
    {ItemState::Verifying, "verifying"},   {ItemState::Verified, "verified"},
    {ItemState::Failed, "failed"},         {ItemState::Cancelled, "cancelled"},
};
}  // namespace

std::string_view to_string(ItemState s) {
  for (const auto& e : kStates) {
    if (e.state == s) return e.name;
  }
  return "unknown";
}

std::optional<ItemState> parse_state(std::string_view s) {
  for (const auto& e : kStates) {
    if (e.name == s) return e.state;
  }
  return std::nullopt;
}

const std::vector<ItemState>& all_states() {
  static const std::vector<ItemState> states = [] {
    std::vector<ItemState> v;
    for (const auto& e : kStates) v.push_back(e.state);
    return v;
  }();
  return states;
}

bool is_final(ItemState s) {
  return s == ItemState::Verified || s == ItemState::Failed || s == ItemState::Cancelled;
}

bool is_in_flight(ItemState s) {
  return s == ItemState::Querying || s == ItemState::Retrieving || s == ItemState::Validating ||
         s == ItemState::Pushing || s == ItemState::Verifying;
}

bool is_legal(ItemState from, ItemState to) {
  using S = ItemState;
  if (to == S::Failed || to == S::Cancelled) return !is_final(from);
  switch (from) {
    case S::Queued:
      return to == S::Querying;
    case S::Querying:
      return to == S::Retrieving || to == S::Queued;
    case S::Retrieving:
      return to == S::Retrieved || to == S::Queued;
    case S::Retrieved:
      return to == S::Validating;
    // Validating -> retrieved: the files could not be read; validation is tried again later.
    case S::Validating:
      return to == S::Validated || to == S::Queued || to == S::Retrieved;
    case S::Validated:
      return to == S::Pushing;
    // Pushing -> queued: a file changed since validation (fetched again from the PACS);
    // -> retrieved: no validated file list (validated by an older version): validate again.
    case S::Pushing:
      return to == S::Pushed || to == S::Validated || to == S::Queued || to == S::Retrieved;
    case S::Pushed:
      return to == S::Verifying;
    // Verifying -> pushed: XNAT does not show the upload yet; -> validated: push it again.
    case S::Verifying:
      return to == S::Verified || to == S::Pushed || to == S::Validated;
    case S::Failed:
      return to == S::Queued;
    case S::Verified:
    case S::Cancelled:
      return false;
  }
  return false;
}

std::string_view to_string(JobState s) {
  switch (s) {
    case JobState::Active:
      return "active";
    case JobState::Done:
      return "done";
    case JobState::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace p2x::store
