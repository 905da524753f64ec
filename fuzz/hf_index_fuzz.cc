// libFuzzer target: arbitrary bytes as the index of a sharded Hugging Face
// checkpoint (model.safetensors.index.json, or pytorch_model.bin.index.json
// when the input has odd length) in a directory that also holds two small,
// valid safetensors shards. OpenModel must answer with a model whose tensors
// lie inside their files, or with an error; never crash.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "formats/model_source.h"

namespace {

void WriteShard(const std::string& path, const std::string& tensor) {
  std::string header = "{\"" + tensor + "\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
  while (header.size() % 8) header += ' ';
  uint64_t n = header.size();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << "abcd";
}

const std::string& Dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/hart_hf_index_fuzz_XXXXXX";
    std::string d = ::mkdtemp(tmpl);
    WriteShard(d + "/model-00001-of-00002.safetensors", "x");
    WriteShard(d + "/model-00002-of-00002.safetensors", "y");
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = Dir();
  bool bin = size % 2 == 1;
  std::string index = dir + (bin ? "/pytorch_model.bin.index.json" : "/model.safetensors.index.json");
  std::string other = dir + (bin ? "/model.safetensors.index.json" : "/pytorch_model.bin.index.json");
  ::unlink(other.c_str());
  {
    std::ofstream f(index, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto m = hart::formats::OpenModel(index);
  if (!m.ok()) return 0;
  for (const auto& t : m->tensors) {
    if (t.owned) continue;
    if (t.file >= m->files.size()) std::abort();
    const auto& f = m->files[t.file];
    uint64_t fsize = f.map ? f.map->size() : 0;
    if (t.offset > fsize || t.nbytes > fsize - t.offset) std::abort();
  }
  return 0;
}
