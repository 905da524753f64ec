#include "app/events.h"

#include <thread>

#include "app/access.h"
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

// An event about a model is seen by whoever may read the model; store-wide
// events (gc) by Admins only.
absl::StatusOr<std::function<bool(const store::Event&)>> VisibleEvent(const Context& ctx) {
  ASSIGN_OR_RETURN(auto readable, ReadableFilter(ctx));
  bool admin = ctx.caller.role == AccessRole::kAdmin;
  return std::function<bool(const store::Event&)>([readable, admin](const store::Event& e) {
    if (admin) return true;
    for (const char* k : {"model", "ref", "version", "deleted"}) {
      auto it = e.payload.find(k);
      if (it != e.payload.end() && it->is_string()) return readable(ModelOfRef(it->get<std::string>()));
    }
    return false;
  });
}

namespace {
// A visible event may still name another model (a version's parent): not
// one the caller may not read (as ResolveVersion hides such a parent).
void HideUnreadableParent(store::Event& e, const std::function<bool(std::string_view)>& readable) {
  auto it = e.payload.find("parent");
  if (it != e.payload.end() && it->is_string() && !readable(ModelOfRef(it->get<std::string>())))
    *it = nullptr;
}
}  // namespace

absl::StatusOr<EventsResponse> Events(const Context& ctx, const EventsRequest& req) {
  if (req.after < 0) return absl::InvalidArgumentError("events: after must be >= 0");
  if (req.limit < 1 || req.limit > 10000)
    return absl::InvalidArgumentError("events: limit must be in [1, 10000]");
  EventsResponse r;
  ASSIGN_OR_RETURN(r.events, ctx.st().Events(req.after, req.limit));
  const int64_t last = r.events.empty() ? req.after : r.events.back().id;
  ASSIGN_OR_RETURN(auto visible, VisibleEvent(ctx));
  std::erase_if(r.events, [&](const store::Event& e) { return !visible(e); });
  if (ctx.caller.role != AccessRole::kAdmin) {
    ASSIGN_OR_RETURN(auto readable, ReadableFilter(ctx));
    for (auto& e : r.events) HideUnreadableParent(e, readable);
  }
  r.last_id = last;  // past the hidden ones too, so a client does not ask again
  return r;
}

absl::Status FollowEvents(const Context& ctx, int64_t after,
                          const std::function<bool(const store::Event&)>& on_event,
                          std::chrono::milliseconds poll, const std::function<bool()>& on_tick) {
  constexpr int64_t kBatch = 1000;
  for (;;) {
    if (ctx.cancel && ctx.cancel->cancelled()) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto events, ctx.st().Events(after, kBatch));
    ASSIGN_OR_RETURN(auto visible, VisibleEvent(ctx));
    ASSIGN_OR_RETURN(auto readable, ReadableFilter(ctx));
    for (auto& e : events) {
      if (!visible(e)) {
        after = e.id;
        continue;
      }
      if (ctx.caller.role != AccessRole::kAdmin) HideUnreadableParent(e, readable);
      if (!on_event(e)) return absl::OkStatus();
      after = e.id;
    }
    if (static_cast<int64_t>(events.size()) == kBatch) continue;  // more waiting
    // Sleep in short steps so a cancel is seen quickly.
    auto until = std::chrono::steady_clock::now() + poll;
    while (std::chrono::steady_clock::now() < until) {
      if (ctx.cancel && ctx.cancel->cancelled()) return absl::OkStatus();
      if (on_tick && !on_tick()) return absl::OkStatus();
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(poll, std::chrono::milliseconds(20)));
    }
  }
}

}  // namespace hart::app
