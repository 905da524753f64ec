// A restricted pickle machine for PyTorch checkpoints. It interprets pickle
// protocols 0-5 into a tree of C++ values and NEVER imports or calls Python:
// GLOBAL / STACK_GLOBAL / INST resolve only against an allowlist of harmless
// names (the torch tensor-rebuild functions, storage types and dtypes,
// OrderedDict, torch.Size, torch.device, set/frozenset, _codecs.encode for
// protocol-2 bytes), and REDUCE / NEWOBJ / BUILD are applied only to those,
// by C++ code that builds the value they would have built. Anything else is
// refused with the opcode, the global (module.name) and the byte offset.
//
// Scan mode runs the same machine without refusing: every import and call is
// recorded as a PickleFinding and unknown objects become opaque values, so a
// report can list all a pickle would do before anyone loads it.
//
// Invariants: every value lives in the result's arena (pointers stay valid as
// long as the PickleResult); the machine never recurses, so nesting depth is
// bounded only by input size, and consumers that walk the tree must bound
// their own recursion (and cycles: a list may contain itself via the memo).
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"

namespace hart::formats {

enum class PickleKind : uint8_t {
  kNone, kBool, kInt, kBigInt, kFloat, kString, kBytes,
  kTuple, kList, kDict, kSet,
  kGlobal,   // an allowlisted name that was imported but is not (yet) called
  kStorage,  // a torch storage from a persistent id
  kTensor,   // the result of torch._utils._rebuild_tensor_v2 (or a Parameter)
  kDevice,   // torch.device(...), text "cuda:0"
  kOpaque,   // scan mode only: the result of something this reader would refuse
};

// What an allowlisted global is; kUnknown only in scan mode.
enum class PickleGlobal : uint8_t {
  kUnknown, kOrderedDict, kRebuildTensorV2, kRebuildParameter, kRebuildParameterWithState,
  kStorageType, kTorchDType, kTorchSize, kTorchDevice, kSet, kFrozenSet, kCodecsEncode,
  kBuiltinBytes,
};

struct PickleValue {
  PickleKind kind = PickleKind::kNone;
  uint64_t offset = 0;  // absolute offset of the opcode that made it
  bool boolean = false;
  // kInt: the value. kStorage: element count. kTensor: storage offset in elements.
  int64_t integer = 0;
  double real = 0;
  // kString (UTF-8), kBytes, kBigInt (little-endian two's complement),
  // kGlobal: module, kDevice: "cuda:0", kStorage: key.
  std::string text;
  // kGlobal: name ("float16" for a dtype). kStorage: location ("cpu").
  std::string name;
  PickleGlobal global = PickleGlobal::kUnknown;
  // kStorage / kGlobal of a storage type: element type, when torch's type maps
  // to one (complex and quantized storages do not: dtype_ok false).
  DType dtype = DType::kU8;
  bool dtype_ok = false;
  // kStorage: the element range inside the stored storage that this views
  // (legacy view_metadata); view_numel < 0 means the whole storage.
  int64_t view_offset = 0;
  int64_t view_numel = -1;
  // kTuple/kList/kSet: elements. kDict: key, value, key, value, ... in
  // insertion order. kTensor: {storage}.
  std::vector<PickleValue*> items;
  // kTensor: sizes and strides in elements, outermost first.
  std::vector<int64_t> sizes, strides;
  bool parameter = false;  // kTensor that came through _rebuild_parameter*
  // kDict: the state a BUILD gave it (an OrderedDict's attributes, such as a
  // state_dict's _metadata); nullptr when none.
  PickleValue* state = nullptr;
};

// One import or call that unpickling would perform.
struct PickleFinding {
  enum class Kind : uint8_t { kImport, kCall, kExtension };
  Kind kind = Kind::kImport;
  std::string opcode;  // "GLOBAL", "STACK_GLOBAL", "INST", "REDUCE", "NEWOBJ", ...
  std::string target;  // "os.system"; for calls of non-globals a description
  uint64_t offset = 0; // absolute offset of the opcode
  bool allowed = false; // this reader knows it and would apply it without code
};

struct PickleResult {
  // Move-only: values point at each other inside the arena, so a copy would
  // point into the original. (std::deque's move keeps element addresses.)
  PickleResult() = default;
  PickleResult(PickleResult&&) = default;
  PickleResult& operator=(PickleResult&&) = default;
  PickleResult(const PickleResult&) = delete;
  PickleResult& operator=(const PickleResult&) = delete;

  std::deque<PickleValue> arena;  // owns every value
  const PickleValue* root = nullptr;
  uint64_t end = 0;  // absolute offset just past STOP
  std::vector<PickleFinding> findings;  // scan mode
  // Scan mode: why the machine stopped early (ok when it reached STOP).
  absl::Status error;
};

struct PickleContext {
  std::string_view file;  // for messages
  uint64_t base = 0;      // absolute offset of bytes[0] in that file
  bool scan = false;
};

// Runs one pickle that starts at bytes[0] and ends at its STOP. Load mode
// returns an error on refused globals/calls and on malformed input. Scan mode
// always returns a result: findings so far, and `error` if it stopped early.
absl::StatusOr<PickleResult> RunPickle(std::span<const uint8_t> bytes, const PickleContext& ctx);

// Allowlist: resolves module.name; kUnknown when refused. Fills dtype for
// storage types and dtypes (dtype_ok false for types with no DType).
PickleGlobal ResolveGlobal(std::string_view module, std::string_view name, DType* dtype,
                           bool* dtype_ok);

std::string_view PickleKindName(PickleKind k);

}  // namespace hart::formats
