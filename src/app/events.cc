#include "app/events.h"

#include <thread>

#include "app/json_io.h"
#include "core/status.h"

namespace hart::app {

using nlohmann::json;

absl::StatusOr<EventsRequest> EventsRequest::FromJson(const json& j) {
  EventsRequest r;
  RETURN_IF_ERROR(FieldReader(j, "events request")
                      .Int("after", &r.after, false, 0)
                      .Int("limit", &r.limit, false, 1, 10000)
                      .Finish());
  return r;
}
json EventsRequest::ToJson() const { return {{"after", after}, {"limit", limit}}; }

json EventsResponse::ToJson() const {
  json j = json::array();
  for (const auto& e : events) j.push_back(app::ToJson(e));
  return j;
}

absl::StatusOr<EventsResponse> Events(const Context& ctx, const EventsRequest& req) {
  if (req.after < 0) return absl::InvalidArgumentError("events: after must be >= 0");
  if (req.limit < 1 || req.limit > 10000)
    return absl::InvalidArgumentError("events: limit must be in [1, 10000]");
  EventsResponse r;
  ASSIGN_OR_RETURN(r.events, ctx.st().Events(req.after, req.limit));
  r.last_id = r.events.empty() ? req.after : r.events.back().id;
  return r;
}

absl::Status FollowEvents(const Context& ctx, int64_t after,
                          const std::function<bool(const store::Event&)>& on_event,
                          std::chrono::milliseconds poll) {
  constexpr int64_t kBatch = 1000;
  for (;;) {
    if (ctx.cancel && ctx.cancel->cancelled()) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto events, ctx.st().Events(after, kBatch));
    for (const auto& e : events) {
      if (!on_event(e)) return absl::OkStatus();
      after = e.id;
    }
    if (static_cast<int64_t>(events.size()) == kBatch) continue;  // more waiting
    // Sleep in short steps so a cancel is seen quickly.
    auto until = std::chrono::steady_clock::now() + poll;
    while (std::chrono::steady_clock::now() < until) {
      if (ctx.cancel && ctx.cancel->cancelled()) return absl::OkStatus();
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(poll, std::chrono::milliseconds(20)));
    }
  }
}

}  // namespace hart::app
