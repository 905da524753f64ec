// The store's outbox (change feed): `hart events [--follow] [--after ID]`,
// and the server's server-sent events.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::app {

struct EventsRequest {
  int64_t after = 0;    // only events with id > after
  int64_t limit = 1000; // 1..10000
  static absl::StatusOr<EventsRequest> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};
struct EventsResponse {
  std::vector<store::Event> events;  // oldest first
  int64_t last_id = 0;               // id of the last event, else the request's after
  // An array of {"id", "ts", "kind", "payload"} (each one line of `hart events`).
  nlohmann::json ToJson() const;
};
absl::StatusOr<EventsResponse> Events(const Context& ctx, const EventsRequest& req);

// Delivers every event after `after` and then new ones as they come,
// polling every `poll`; ends ok when on_event returns false or the context
// is cancelled (Cancelled is not an error here: the follower went away).
// `on_tick`, when given, runs between polls (about every 20 ms; the server's
// stream sends ingest progress from it) and ends the follow by returning false.
absl::Status FollowEvents(const Context& ctx, int64_t after,
                          const std::function<bool(const store::Event&)>& on_event,
                          std::chrono::milliseconds poll = std::chrono::milliseconds(200),
                          const std::function<bool()>& on_tick = nullptr);

}  // namespace hart::app
