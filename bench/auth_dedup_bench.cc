// Issue 14, dedup across owners stays invisible: ingest time of a file whose
// bytes only another owner's private model holds ("hidden"), against a file
// of the same size that nobody holds ("fresh", the baseline measured in the
// same run) and against a file the caller's own model holds ("own"). The
// hidden and fresh figures must match: the store writes and syncs a hidden
// chunk exactly like a new one (docs/AUTH.md). Each round uses new random
// files; the order of hidden and fresh alternates between rounds.
// Usage: auth_dedup_bench [--dir DIR] [--size-mib N] [--rounds R]
//        (default /tmp, 256 MiB, 3 rounds)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "app/access.h"
#include "app/transfer.h"
#include "core/progress.h"
#include "core/status.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace fs = std::filesystem;

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Die(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "auth_dedup_bench: %s: %s\n", what, std::string(hart::Msg(s)).c_str());
    std::exit(1);
  }
}

// A safetensors file of 16 MiB U8 tensors of random bytes, `mib` MiB in all.
void WriteModel(const std::string& path, uint64_t mib, uint64_t seed) {
  const uint64_t per = 16ull << 20;
  const uint64_t n = std::max<uint64_t>(1, mib / 16);
  nlohmann::json h = nlohmann::json::object();
  h["__metadata__"] = {{"license", "mit"}};
  for (uint64_t i = 0; i < n; ++i)
    h["t" + std::to_string(i)] = {{"dtype", "U8"}, {"shape", {per}}, {"data_offsets", {i * per, (i + 1) * per}}};
  std::string hdr = h.dump();
  while (hdr.size() % 8) hdr.push_back(' ');
  std::ofstream f(path, std::ios::binary);
  uint64_t len = hdr.size();
  f.write(reinterpret_cast<const char*>(&len), 8);
  f.write(hdr.data(), static_cast<std::streamsize>(hdr.size()));
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> buf(per / 8);
  for (uint64_t i = 0; i < n; ++i) {
    for (auto& w : buf) w = rng();
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(per));
  }
}

struct Run {
  double secs = 0;
  uint64_t new_bytes = 0;
};

Run Ingest(const hart::app::Context& ctx, const std::string& path, const std::string& model) {
  hart::app::IngestRequest req;
  req.path = path;
  req.model = model;
  double t0 = Now();
  auto r = hart::app::Ingest(ctx, req);
  Die(r.status(), ("ingest " + model).c_str());
  return {Now() - t0, r->result.new_bytes};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  uint64_t mib = 256;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--size-mib")) mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
  }
  hart::Progress::SetEnabled(false);
  const std::string root = dir + "/hart_auth_dedup_bench";
  fs::remove_all(root);
  fs::create_directories(root);
  Die(hart::store::Store::Init(root + "/store"), "init");
  auto s = hart::store::Store::Open(root + "/store");
  Die(s.status(), "open");
  std::shared_ptr<hart::store::Store> store(std::move(*s));
  auto as = [&](const char* who) {
    hart::app::Context c;
    c.store = store;
    c.actor = who;
    c.caller = {.actor = who, .owner = std::string("bench|") + who, .tenant = who,
                .role = hart::app::AccessRole::kContributor, .authenticated = true};
    c.tty_progress = false;
    return c;
  };
  const hart::app::Context bob = as("bob"), carol = as("carol");
  std::vector<double> hidden, fresh, own;
  uint64_t hidden_new = 0, fresh_new = 0, own_new = 0;
  for (int r = 0; r < rounds; ++r) {
    const std::string a = root + "/a.safetensors", f = root + "/f.safetensors";
    WriteModel(a, mib, 1000 + r);
    WriteModel(f, mib, 2000 + r);
    Ingest(bob, a, "bob-" + std::to_string(r));  // bob's private model holds a's bytes
    Run h, fr;
    if (r % 2 == 0) {
      h = Ingest(carol, a, "carol-a" + std::to_string(r));
      fr = Ingest(carol, f, "carol-f" + std::to_string(r));
    } else {
      fr = Ingest(carol, f, "carol-f" + std::to_string(r));
      h = Ingest(carol, a, "carol-a" + std::to_string(r));
    }
    Run o = Ingest(carol, a, "carol-a" + std::to_string(r));  // a second version: its own bytes
    hidden.push_back(h.secs);
    fresh.push_back(fr.secs);
    own.push_back(o.secs);
    hidden_new = h.new_bytes;
    fresh_new = fr.new_bytes;
    own_new = o.new_bytes;
    std::printf("round %d: hidden %.3f s, fresh %.3f s, own %.3f s\n", r, h.secs, fr.secs, o.secs);
    fs::remove(a);
    fs::remove(f);
  }
  const double m = static_cast<double>(mib);
  std::printf("size %llu MiB, %d rounds (median):\n", static_cast<unsigned long long>(mib), rounds);
  std::printf("  fresh  (baseline)         %.3f s  %7.1f MiB/s  new_bytes %llu\n", Median(fresh), m / Median(fresh),
              static_cast<unsigned long long>(fresh_new));
  std::printf("  hidden (another's private) %.3f s  %7.1f MiB/s  new_bytes %llu  ratio to fresh %.3f\n",
              Median(hidden), m / Median(hidden), static_cast<unsigned long long>(hidden_new),
              Median(hidden) / Median(fresh));
  std::printf("  own    (own dedup)         %.3f s  %7.1f MiB/s  new_bytes %llu\n", Median(own), m / Median(own),
              static_cast<unsigned long long>(own_new));
  auto g = store->Gc("bench");
  Die(g.status(), "gc");
  store.reset();
  fs::remove_all(root);
  return 0;
}
