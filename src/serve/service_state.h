// State the route families share beyond the Service's own members: the
// model registry (one LoadedModel per version, shared by every session).
#pragma once

#include <memory>

#include "app/engine.h"
#include "app/models.h"
#include "serve/ingest_progress.h"
#include "serve/service.h"

namespace hart::serve {

struct Service::Extra {
  std::unique_ptr<app::ModelRegistry> registry;
  std::unique_ptr<app::EngineSet> engines;  // one batching engine per loaded model
  IngestProgress ingest_progress;            // running uploads' ingests (the event stream tells them)
};

inline Service::Extra& State(Service& s) { return *s.extra; }

// Resident weight bytes of every loaded model (mapped or pinned by its budget).
uint64_t ResidentWeightBytes(Service& s);

}  // namespace hart::serve
