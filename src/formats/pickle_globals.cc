// The allowlist of globals a PyTorch checkpoint may import, and the C++
// stand-ins for the few that may be called. Nothing here imports or runs
// Python; each stand-in builds the value the Python callable would return,
// after checking its arguments as strictly as torch.load would.
#include <array>
#include <utility>

#include "core/status.h"
#include "fmt/format.h"
#include "formats/pickle_internal.h"

namespace hart::formats {
namespace {

struct StorageType {
  std::string_view name;
  DType dtype;
  bool ok;  // false: torch has it but Hartonomous has no DType for it
};
constexpr std::array<StorageType, 19> kStorageTypes = {{
    {"FloatStorage", DType::kF32, true},       {"DoubleStorage", DType::kF64, true},
    {"HalfStorage", DType::kF16, true},        {"BFloat16Storage", DType::kBF16, true},
    {"LongStorage", DType::kI64, true},        {"IntStorage", DType::kI32, true},
    {"ShortStorage", DType::kI16, true},       {"CharStorage", DType::kI8, true},
    {"ByteStorage", DType::kU8, true},         {"BoolStorage", DType::kBool, true},
    {"UntypedStorage", DType::kU8, true},      {"ComplexFloatStorage", DType::kU8, false},
    {"ComplexDoubleStorage", DType::kU8, false}, {"ComplexHalfStorage", DType::kU8, false},
    {"QInt8Storage", DType::kU8, false},       {"QUInt8Storage", DType::kU8, false},
    {"QInt32Storage", DType::kU8, false},      {"QUInt4x2Storage", DType::kU8, false},
    {"QUInt2x4Storage", DType::kU8, false},
}};

struct TorchDType {
  std::string_view name;
  DType dtype;
  bool ok;
};
constexpr std::array<TorchDType, 31> kTorchDTypes = {{
    {"float32", DType::kF32, true},   {"float", DType::kF32, true},
    {"float64", DType::kF64, true},   {"double", DType::kF64, true},
    {"float16", DType::kF16, true},   {"half", DType::kF16, true},
    {"bfloat16", DType::kBF16, true}, {"int64", DType::kI64, true},
    {"long", DType::kI64, true},      {"int32", DType::kI32, true},
    {"int", DType::kI32, true},       {"int16", DType::kI16, true},
    {"short", DType::kI16, true},     {"int8", DType::kI8, true},
    {"uint8", DType::kU8, true},      {"bool", DType::kBool, true},
    {"uint16", DType::kU16, true},    {"uint32", DType::kU32, true},
    {"uint64", DType::kU64, true},    {"float8_e4m3fn", DType::kF8E4M3, true},
    {"float8_e5m2", DType::kF8E5M2, true}, {"complex32", DType::kU8, false},
    {"chalf", DType::kU8, false},     {"complex64", DType::kU8, false},
    {"cfloat", DType::kU8, false},    {"complex128", DType::kU8, false},
    {"cdouble", DType::kU8, false},   {"qint8", DType::kU8, false},
    {"quint8", DType::kU8, false},    {"qint32", DType::kU8, false},
    {"quint4x2", DType::kU8, false},
}};

}  // namespace

PickleGlobal ResolveGlobal(std::string_view module, std::string_view name, DType* dtype,
                           bool* dtype_ok) {
  // Protocol <= 2 pickles written by Python 3 spell builtins "__builtin__".
  bool builtins = module == "builtins" || module == "__builtin__";
  if (module == "collections" && name == "OrderedDict") return PickleGlobal::kOrderedDict;
  if (module == "torch._utils") {
    if (name == "_rebuild_tensor_v2") return PickleGlobal::kRebuildTensorV2;
    if (name == "_rebuild_parameter") return PickleGlobal::kRebuildParameter;
    if (name == "_rebuild_parameter_with_state") return PickleGlobal::kRebuildParameterWithState;
    return PickleGlobal::kUnknown;
  }
  if (builtins && name == "set") return PickleGlobal::kSet;
  if (builtins && name == "frozenset") return PickleGlobal::kFrozenSet;
  if (builtins && name == "bytes") return PickleGlobal::kBuiltinBytes;
  if (module == "_codecs" && name == "encode") return PickleGlobal::kCodecsEncode;
  // Old checkpoints name CUDA storages torch.cuda.FloatStorage.
  if (module == "torch" || module == "torch.cuda" || module == "torch.storage") {
    for (const auto& s : kStorageTypes) {
      if (s.name != name) continue;
      if (dtype) *dtype = s.dtype;
      if (dtype_ok) *dtype_ok = s.ok;
      return PickleGlobal::kStorageType;
    }
  }
  if (module != "torch") return PickleGlobal::kUnknown;
  if (name == "Size") return PickleGlobal::kTorchSize;
  if (name == "device") return PickleGlobal::kTorchDevice;
  for (const auto& d : kTorchDTypes) {
    if (d.name != name) continue;
    if (dtype) *dtype = d.dtype;
    if (dtype_ok) *dtype_ok = d.ok;
    return PickleGlobal::kTorchDType;
  }
  return PickleGlobal::kUnknown;
}

namespace pickle_internal {

absl::Status Heap::Charge(uint64_t units, uint64_t offset) {
  work_ += units;
  if (work_ > work_limit_)
    return DataError(file_, offset, "pickle",
                     fmt::format("copies more than {} values; refused as a resource bomb",
                                 work_limit_));
  return absl::OkStatus();
}

std::string DescribeCallable(const PickleValue* v) {
  if (v->kind == PickleKind::kGlobal) return fmt::format("{}.{}", Printable(v->text, 120), Printable(v->name, 120));
  return fmt::format("<{} made at offset {}>", PickleKindName(v->kind), v->offset);
}

namespace {

class CallChecker {
 public:
  CallChecker(Heap& heap, const PickleValue* callable, std::string_view opcode, uint64_t offset)
      : heap_(heap), opcode_(opcode), target_(DescribeCallable(callable)), offset_(offset) {}

  absl::Status Error(std::string_view what) const {
    return DataError(heap_.file(), offset_, fmt::format("pickle {} {}", opcode_, target_), what);
  }
  absl::Status Arity(const PickleValue* args, size_t lo, size_t hi) const {
    size_t n = args->items.size();
    if (n < lo || n > hi)
      return Error(lo == hi ? fmt::format("takes {} arguments, got {}", lo, n)
                            : fmt::format("takes {} to {} arguments, got {}", lo, hi, n));
    return absl::OkStatus();
  }
  // A tuple or list of non-negative ints with at most kMaxDims entries.
  absl::StatusOr<std::vector<int64_t>> Dims(const PickleValue* v, std::string_view what) const {
    constexpr size_t kMaxDims = 64;
    if (v->kind != PickleKind::kTuple && v->kind != PickleKind::kList)
      return Error(fmt::format("{} is a {}, not a tuple", what, PickleKindName(v->kind)));
    if (v->items.size() > kMaxDims)
      return Error(fmt::format("{} has {} dimensions (at most {})", what, v->items.size(), kMaxDims));
    std::vector<int64_t> out;
    for (const PickleValue* d : v->items) {
      if (d->kind != PickleKind::kInt || d->integer < 0)
        return Error(fmt::format("{} holds something other than a non-negative int", what));
      out.push_back(d->integer);
    }
    return out;
  }
  Heap& heap() { return heap_; }
  uint64_t offset() const { return offset_; }

 private:
  Heap& heap_;
  std::string_view opcode_;
  std::string target_;
  uint64_t offset_;
};

bool IsSequence(const PickleValue* v) {
  return v->kind == PickleKind::kTuple || v->kind == PickleKind::kList ||
         v->kind == PickleKind::kSet;
}

absl::StatusOr<PickleValue*> MakeDict(CallChecker& c, const PickleValue* args) {
  RETURN_IF_ERROR(c.Arity(args, 0, 1));
  PickleValue* out = c.heap().New(PickleKind::kDict, c.offset());
  if (args->items.empty()) return out;
  const PickleValue* src = args->items[0];
  if (src->kind == PickleKind::kDict) {
    RETURN_IF_ERROR(c.heap().Charge(src->items.size(), c.offset()));
    out->items = src->items;
    return out;
  }
  if (!IsSequence(src)) return c.Error("argument is neither a dict nor a sequence of pairs");
  RETURN_IF_ERROR(c.heap().Charge(src->items.size() * 2, c.offset()));
  for (const PickleValue* pair : src->items) {
    if ((pair->kind != PickleKind::kTuple && pair->kind != PickleKind::kList) ||
        pair->items.size() != 2)
      return c.Error("sequence element is not a (key, value) pair");
    out->items.push_back(pair->items[0]);
    out->items.push_back(pair->items[1]);
  }
  return out;
}

absl::StatusOr<PickleValue*> MakeTensor(CallChecker& c, const PickleValue* args) {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  //                    backward_hooks, metadata=None)
  RETURN_IF_ERROR(c.Arity(args, 6, 7));
  PickleValue* storage = args->items[0];
  if (storage->kind != PickleKind::kStorage)
    return c.Error(fmt::format("argument 1 is a {}, not a storage", PickleKindName(storage->kind)));
  const PickleValue* off = args->items[1];
  if (off->kind != PickleKind::kInt || off->integer < 0)
    return c.Error("argument 2 (storage offset) is not a non-negative int");
  ASSIGN_OR_RETURN(auto sizes, c.Dims(args->items[2], "argument 3 (size)"));
  ASSIGN_OR_RETURN(auto strides, c.Dims(args->items[3], "argument 4 (stride)"));
  if (sizes.size() != strides.size())
    return c.Error(fmt::format("size has {} dimensions but stride has {}", sizes.size(),
                               strides.size()));
  const PickleValue* hooks = args->items[5];
  if (hooks->kind != PickleKind::kDict && hooks->kind != PickleKind::kNone)
    return c.Error("argument 6 (backward hooks) is not a dict");
  if (hooks->kind == PickleKind::kDict && !hooks->items.empty())
    return c.Error("backward hooks are code; refused");
  PickleValue* t = c.heap().New(PickleKind::kTensor, c.offset());
  t->items = {storage};
  t->integer = off->integer;
  t->sizes = std::move(sizes);
  t->strides = std::move(strides);
  t->dtype = storage->dtype;
  t->dtype_ok = storage->dtype_ok;
  return t;
}

absl::StatusOr<PickleValue*> MakeParameter(CallChecker& c, const PickleValue* args,
                                           size_t nargs) {
  // _rebuild_parameter(data, requires_grad, backward_hooks[, state])
  RETURN_IF_ERROR(c.Arity(args, nargs, nargs));
  const PickleValue* data = args->items[0];
  if (data->kind != PickleKind::kTensor)
    return c.Error(fmt::format("argument 1 is a {}, not a tensor", PickleKindName(data->kind)));
  const PickleValue* hooks = args->items[2];
  if (hooks->kind == PickleKind::kDict && !hooks->items.empty())
    return c.Error("backward hooks are code; refused");
  PickleValue* t = c.heap().New(PickleKind::kTensor, c.offset());
  *t = *data;
  t->offset = c.offset();
  t->parameter = true;
  return t;
}

absl::StatusOr<PickleValue*> MakeDevice(CallChecker& c, const PickleValue* args) {
  RETURN_IF_ERROR(c.Arity(args, 1, 2));
  if (args->items[0]->kind != PickleKind::kString) return c.Error("device type is not a string");
  PickleValue* d = c.heap().New(PickleKind::kDevice, c.offset());
  d->text = args->items[0]->text;
  if (args->items.size() == 2) {
    const PickleValue* idx = args->items[1];
    if (idx->kind == PickleKind::kInt) d->text += fmt::format(":{}", idx->integer);
    else if (idx->kind != PickleKind::kNone) return c.Error("device index is not an int");
  }
  return d;
}

absl::StatusOr<PickleValue*> EncodeLatin1(CallChecker& c, const PickleValue* args) {
  // Protocol-2 pickles spell bytes b as _codecs.encode(b.decode('latin1'), 'latin1').
  RETURN_IF_ERROR(c.Arity(args, 1, 2));
  const PickleValue* s = args->items[0];
  if (s->kind != PickleKind::kString) return c.Error("argument 1 is not a string");
  if (args->items.size() == 2) {
    const PickleValue* enc = args->items[1];
    if (enc->kind != PickleKind::kString ||
        (enc->text != "latin1" && enc->text != "latin-1" && enc->text != "iso-8859-1"))
      return c.Error("only the latin1 encoding is applied");
  }
  PickleValue* b = c.heap().New(PickleKind::kBytes, c.offset());
  const std::string& in = s->text;
  for (size_t i = 0; i < in.size();) {
    auto ch = static_cast<unsigned char>(in[i]);
    if (ch < 0x80) { b->text.push_back(static_cast<char>(ch)); ++i; continue; }
    // Valid UTF-8 is guaranteed; latin1 holds code points below 256 only,
    // which are two-byte sequences led by 0xC2 or 0xC3.
    if ((ch == 0xC2 || ch == 0xC3) && i + 1 < in.size()) {
      b->text.push_back(static_cast<char>(((ch & 0x03) << 6) | (in[i + 1] & 0x3F)));
      i += 2;
      continue;
    }
    return c.Error("string has a code point above U+00FF; latin1 cannot encode it");
  }
  return b;
}

}  // namespace

absl::StatusOr<PickleValue*> ApplyCall(Heap& heap, PickleValue* callable, PickleValue* args,
                                       PickleValue* kwargs, std::string_view opcode,
                                       uint64_t offset) {
  CallChecker c(heap, callable, opcode, offset);
  if (callable->kind != PickleKind::kGlobal)
    return c.Error("refused: only allowlisted globals are ever called");
  if (args->kind != PickleKind::kTuple)
    return c.Error(fmt::format("arguments are a {}, not a tuple", PickleKindName(args->kind)));
  if (kwargs && !(kwargs->kind == PickleKind::kDict && kwargs->items.empty()))
    return c.Error("keyword arguments are not applied");
  switch (callable->global) {
    case PickleGlobal::kOrderedDict: return MakeDict(c, args);
    case PickleGlobal::kRebuildTensorV2: return MakeTensor(c, args);
    case PickleGlobal::kRebuildParameter: return MakeParameter(c, args, 3);
    case PickleGlobal::kRebuildParameterWithState: return MakeParameter(c, args, 4);
    case PickleGlobal::kTorchDevice: return MakeDevice(c, args);
    case PickleGlobal::kCodecsEncode: return EncodeLatin1(c, args);
    case PickleGlobal::kBuiltinBytes: {
      RETURN_IF_ERROR(c.Arity(args, 0, 0));  // bytes(n) would allocate n bytes
      return heap.New(PickleKind::kBytes, offset);
    }
    case PickleGlobal::kSet:
    case PickleGlobal::kFrozenSet:
    case PickleGlobal::kTorchSize: {
      RETURN_IF_ERROR(c.Arity(args, 0, 1));
      bool size = callable->global == PickleGlobal::kTorchSize;
      PickleValue* out = heap.New(size ? PickleKind::kTuple : PickleKind::kSet, offset);
      if (args->items.empty()) return out;
      const PickleValue* src = args->items[0];
      if (!IsSequence(src)) return c.Error("argument is not a sequence");
      if (size) RETURN_IF_ERROR(c.Dims(src, "size").status());
      RETURN_IF_ERROR(heap.Charge(src->items.size(), offset));
      out->items = src->items;
      return out;
    }
    case PickleGlobal::kStorageType:
    case PickleGlobal::kTorchDType:
    case PickleGlobal::kUnknown:
      break;
  }
  return c.Error("refused: this reader never calls it (it only rebuilds tensors and containers)");
}

absl::Status ApplyBuild(Heap& heap, PickleValue* target, PickleValue* state, uint64_t offset) {
  if (target->kind == PickleKind::kDict) {
    // OrderedDict.__reduce__ carries instance attributes (a state_dict's
    // _metadata) as BUILD state; keep them as data, set nothing.
    target->state = state;
    return absl::OkStatus();
  }
  return DataError(heap.file(), offset, fmt::format("pickle BUILD on a {}", PickleKindName(target->kind)),
                   "refused: only an OrderedDict's state is accepted (__setstate__ is code)");
}

}  // namespace pickle_internal
}  // namespace hart::formats
