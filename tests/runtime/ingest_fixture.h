// Ingesting a test model file into a store, as the runtime and app tests do
// before they load a stored version.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "core/status.h"
#include "formats/gguf.h"
#include "store/store.h"

namespace hart::runtime::testing {

// Ingests the GGUF file at `path` into `st` as the next version of model
// `name` (license mit, no progress); returns the bytes of its tensors.
inline absl::StatusOr<uint64_t> IngestGguf(store::Store& st, const std::string& path, const std::string& name) {
  ASSIGN_OR_RETURN(auto src, formats::ReadGguf(path));
  store::IngestOptions io;
  io.model = name;
  io.progress = false;
  io.license = "mit";
  RETURN_IF_ERROR(st.Ingest(src, io).status());
  uint64_t total = 0;
  for (const auto& t : src.tensors) total += t.nbytes;
  return total;
}

}  // namespace hart::runtime::testing
