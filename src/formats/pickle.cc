// The pickle machine: one loop over opcodes (pickletools' table, protocols
// 0-5) with a stack, a mark stack and a memo, as in CPython's _Unpickler,
// except that imports and calls go through the allowlist in
// pickle_globals.cc instead of Python.
#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "core/status.h"
#include "fmt/format.h"
#include "formats/model_source.h"
#include "formats/pickle_internal.h"

namespace hart::formats {

namespace {

using pickle_internal::Heap;
using pickle_internal::OpName;
using pickle_internal::AppendUtf8;
using pickle_internal::HexDigit;
using pickle_internal::EscapeDecode;
using pickle_internal::BigIntText;

// A class a whole pickled model (torch.save(model) rather than its
// state_dict) refers to: torch.nn modules, classes of the script that saved
// it (__main__), or any capitalised class name outside the modules whose
// only use in a pickle is running code.
bool LooksLikeModelClass(std::string_view module, std::string_view name) {
  if (module == "__main__" || module.starts_with("torch.nn") || module.starts_with("transformers"))
    return true;
  for (std::string_view bad : {"os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys",
                               "runpy", "webbrowser", "pickle", "shutil", "socket", "importlib",
                               "code", "pty", "functools", "operator", "copyreg", "ctypes"})
    if (module == bad || (module.starts_with(bad) && module.size() > bad.size() && module[bad.size()] == '.'))
      return false;
  return !name.empty() && name[0] >= 'A' && name[0] <= 'Z';
}

class Machine {
 public:
  Machine(std::span<const uint8_t> in, const PickleContext& ctx, PickleResult* out)
      : in_(in), ctx_(ctx), out_(out),
        heap_(&out->arena, ctx.file, 4 * static_cast<uint64_t>(in.size()) + (1u << 20)) {}

  absl::Status Run();

 private:
  uint64_t Abs(size_t pos) const { return ctx_.base + pos; }
  absl::Status Error(std::string_view what) const {
    return DataError(ctx_.file, Abs(op_pos_), fmt::format("pickle {}", OpName(op_)), what);
  }
  absl::Status Need(uint64_t n) const {
    if (n > in_.size() - pos_)
      return Error(fmt::format("needs {} bytes but only {} remain", n, in_.size() - pos_));
    return absl::OkStatus();
  }
  uint64_t TakeLE(size_t n) {  // callers checked Need(n)
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(in_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  absl::StatusOr<uint64_t> ReadLE(size_t n) {
    RETURN_IF_ERROR(Need(n));
    return TakeLE(n);
  }
  absl::StatusOr<std::string_view> ReadBytes(uint64_t n) {
    RETURN_IF_ERROR(Need(n));
    std::string_view s(reinterpret_cast<const char*>(in_.data()) + pos_, n);
    pos_ += n;
    return s;
  }
  absl::StatusOr<std::string_view> ReadLine() {
    const uint8_t* start = in_.data() + pos_;
    const void* nl = std::memchr(start, '\n', in_.size() - pos_);
    if (!nl) return Error("line is not terminated by a newline");
    size_t len = static_cast<const uint8_t*>(nl) - start;
    pos_ += len + 1;
    return std::string_view(reinterpret_cast<const char*>(start), len);
  }

  PickleValue* New(PickleKind k) { return heap_.New(k, Abs(op_pos_)); }
  size_t Floor() const { return marks_.empty() ? 0 : marks_.back(); }
  absl::StatusOr<PickleValue*> Pop() {
    if (stack_.size() <= Floor()) return Error("stack underflow");
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  absl::StatusOr<PickleValue*> Top() {
    if (stack_.size() <= Floor()) return Error("stack underflow");
    return stack_.back();
  }
  absl::StatusOr<std::vector<PickleValue*>> PopMark() {
    if (marks_.empty()) return Error("no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + static_cast<ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PickleValue* Seq(PickleKind k, std::vector<PickleValue*> items) {
    PickleValue* v = New(k);
    v->items = std::move(items);
    return v;
  }
  absl::Status PushString(std::string_view s, bool bytes) {
    if (!bytes && !IsValidUtf8(s)) return Error("string is not valid UTF-8");
    PickleValue* v = New(bytes ? PickleKind::kBytes : PickleKind::kString);
    v->text.assign(s);
    stack_.push_back(v);
    return absl::OkStatus();
  }
  void PushInt(int64_t i) {
    PickleValue* v = New(PickleKind::kInt);
    v->integer = i;
    stack_.push_back(v);
  }
  absl::Status PushLong(std::span<const uint8_t> le);
  absl::Status PushDecimal(std::string_view line);
  absl::Status PushUnicodeEscaped(std::string_view line);
  absl::Status Memo(uint64_t idx) {
    ASSIGN_OR_RETURN(PickleValue * v, Top());
    memo_[idx] = v;
    return absl::OkStatus();
  }
  absl::Status Get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) return Error(fmt::format("memo key {} was never stored", idx));
    stack_.push_back(it->second);
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> LineIndex() {
    ASSIGN_OR_RETURN(std::string_view line, ReadLine());
    uint64_t idx = 0;
    auto r = std::from_chars(line.data(), line.data() + line.size(), idx);
    if (r.ec != std::errc() || r.ptr != line.data() + line.size())
      return Error("memo index is not a decimal number");
    return idx;
  }

  absl::Status Import(std::string_view module, std::string_view name);
  absl::Status Call(PickleValue* callable, PickleValue* args, PickleValue* kwargs);
  absl::Status Persistent(PickleValue* pid);
  absl::Status Mutation(PickleValue* target, std::string_view what);
  absl::Status SetItems(PickleValue* dict, const std::vector<PickleValue*>& kv);
  absl::Status Step(uint8_t op);

  std::span<const uint8_t> in_;
  const PickleContext& ctx_;
  PickleResult* out_;
  Heap heap_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  bool stopped_ = false;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
};

absl::Status Machine::PushLong(std::span<const uint8_t> le) {
  if (le.size() <= 8) {
    uint64_t v = 0;
    for (size_t i = 0; i < le.size(); ++i) v |= static_cast<uint64_t>(le[i]) << (8 * i);
    if (!le.empty() && (le.back() & 0x80) && le.size() < 8) v |= ~uint64_t{0} << (8 * le.size());
    // A non-negative 8-byte long above INT64_MAX has a ninth zero byte, so
    // every <= 8-byte encoding fits int64.
    PushInt(static_cast<int64_t>(v));
    return absl::OkStatus();
  }
  PickleValue* v = New(PickleKind::kBigInt);
  v->text = BigIntText(le);
  stack_.push_back(v);
  return absl::OkStatus();
}

absl::Status Machine::PushDecimal(std::string_view line) {
  if (!line.empty() && line.back() == 'L') line.remove_suffix(1);  // LONG's suffix
  if (line == "00" || line == "01") {  // protocol 0 spells bools as INT 00 / 01
    PickleValue* v = New(PickleKind::kBool);
    v->boolean = line == "01";
    stack_.push_back(v);
    return absl::OkStatus();
  }
  std::string_view digits = line;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return Error("not a decimal integer");
  int64_t i = 0;
  const char* b = line.data() + (line[0] == '+' ? 1 : 0);
  auto r = std::from_chars(b, line.data() + line.size(), i);
  if (r.ec == std::errc() && r.ptr == line.data() + line.size()) {
    PushInt(i);
  } else {
    PickleValue* v = New(PickleKind::kBigInt);
    v->text.assign(line);
    stack_.push_back(v);
  }
  return absl::OkStatus();
}

// Python's raw-unicode-escape: \uXXXX and \UXXXXXXXX escapes, other bytes
// are Latin-1 code points.
absl::Status Machine::PushUnicodeEscaped(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t digits = 0;
    if (c == '\\' && i + 1 < s.size()) digits = s[i + 1] == 'u' ? 4 : s[i + 1] == 'U' ? 8 : 0;
    if (digits == 0) { AppendUtf8(out, c); continue; }
    if (i + 2 + digits > s.size()) return Error("truncated \\u escape");
    uint32_t cp = 0;
    for (size_t k = 0; k < digits; ++k) {
      int d = HexDigit(s[i + 2 + k]);
      if (d < 0) return Error("bad \\u escape");
      cp = cp * 16 + static_cast<uint32_t>(d);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return Error("escape is not a code point");
    AppendUtf8(out, cp);
    i += 1 + digits;
  }
  return PushString(out, false);
}

absl::Status Machine::Import(std::string_view module, std::string_view name) {
  DType dtype = DType::kU8;
  bool dtype_ok = false;
  PickleGlobal g = ResolveGlobal(module, name, &dtype, &dtype_ok);
  // Module and name are untrusted bytes: shown escaped and cut.
  std::string global = fmt::format("{}.{}", Printable(module, 120), Printable(name, 120));
  if (ctx_.scan) {
    out_->findings.push_back({PickleFinding::Kind::kImport, std::string(OpName(op_)), global,
                              Abs(op_pos_), g != PickleGlobal::kUnknown});
  } else if (g == PickleGlobal::kUnknown) {
    std::string what = "refused: not an allowlisted tensor-rebuild global; nothing was imported or run";
    if (LooksLikeModelClass(module, name))
      what += "; if this file is a whole model saved with torch.save(model), load it in Python "
              "and save its weights with torch.save(model.state_dict(), path), then ingest that file";
    return DataError(ctx_.file, Abs(op_pos_), fmt::format("pickle {} {}", OpName(op_), global), what);
  }
  PickleValue* v = New(PickleKind::kGlobal);
  v->text.assign(module);
  v->name.assign(name);
  v->global = g;
  v->dtype = dtype;
  v->dtype_ok = dtype_ok;
  stack_.push_back(v);
  return absl::OkStatus();
}

absl::Status Machine::Call(PickleValue* callable, PickleValue* args, PickleValue* kwargs) {
  if (!ctx_.scan) {
    ASSIGN_OR_RETURN(PickleValue * r,
                     pickle_internal::ApplyCall(heap_, callable, args, kwargs, OpName(op_), Abs(op_pos_)));
    stack_.push_back(r);
    return absl::OkStatus();
  }
  PickleGlobal g = callable->kind == PickleKind::kGlobal ? callable->global : PickleGlobal::kUnknown;
  bool allowed = g != PickleGlobal::kUnknown && g != PickleGlobal::kStorageType &&
                 g != PickleGlobal::kTorchDType;
  out_->findings.push_back({PickleFinding::Kind::kCall, std::string(OpName(op_)),
                            pickle_internal::DescribeCallable(callable), Abs(op_pos_), allowed});
  if (allowed) {
    auto r = pickle_internal::ApplyCall(heap_, callable, args, kwargs, OpName(op_), Abs(op_pos_));
    if (r.ok()) {
      stack_.push_back(*r);
      return absl::OkStatus();
    }
  }
  stack_.push_back(New(PickleKind::kOpaque));
  return absl::OkStatus();
}

// torch's persistent ids: ('storage', storage_type, key, location, numel)
// in zip checkpoints, plus view_metadata (None or (view_key, offset, numel))
// in the legacy format.
absl::Status Machine::Persistent(PickleValue* pid) {
  auto refuse = [&](std::string_view why) -> absl::Status {
    if (!ctx_.scan) return Error(fmt::format("persistent id refused: {}", why));
    stack_.push_back(New(PickleKind::kOpaque));
    return absl::OkStatus();
  };
  if (pid->kind != PickleKind::kTuple) return refuse("not a tuple");
  const auto& f = pid->items;
  if (f.empty() || (f[0]->kind != PickleKind::kString && f[0]->kind != PickleKind::kBytes) ||
      f[0]->text != "storage")
    return refuse("not a ('storage', ...) tuple");
  if (f.size() != 5 && f.size() != 6) return refuse("a storage id has 5 or 6 fields");
  if (f[1]->kind != PickleKind::kGlobal || f[1]->global != PickleGlobal::kStorageType)
    return refuse("field 2 is not a torch storage type");
  for (int i : {2, 3})
    if (f[i]->kind != PickleKind::kString && f[i]->kind != PickleKind::kBytes)
      return refuse(i == 2 ? "storage key is not a string" : "location is not a string");
  if (f[4]->kind != PickleKind::kInt || f[4]->integer < 0) return refuse("numel is not a non-negative int");
  PickleValue* s = New(PickleKind::kStorage);
  s->text = f[2]->text;
  s->name = f[3]->text;
  s->integer = f[4]->integer;
  s->dtype = f[1]->dtype;
  s->dtype_ok = f[1]->dtype_ok;
  s->items = {f[1]};
  if (f.size() == 6 && f[5]->kind != PickleKind::kNone) {
    const PickleValue* view = f[5];
    if (view->kind != PickleKind::kTuple || view->items.size() != 3 ||
        view->items[1]->kind != PickleKind::kInt || view->items[2]->kind != PickleKind::kInt ||
        view->items[1]->integer < 0 || view->items[2]->integer < 0)
      return refuse("view metadata is not (key, offset, numel)");
    s->view_offset = view->items[1]->integer;
    s->view_numel = view->items[2]->integer;
  }
  stack_.push_back(s);
  return absl::OkStatus();
}

// APPEND / SETITEM / ADDITEMS / BUILD on something that is not a container
// this reader made: Python would call a method of an arbitrary object.
absl::Status Machine::Mutation(PickleValue* target, std::string_view what) {
  if (!ctx_.scan)
    return Error(fmt::format("refused: {} on a {} would call its methods", what, PickleKindName(target->kind)));
  if (target->kind != PickleKind::kOpaque)  // opaque ones are already reported
    out_->findings.push_back({PickleFinding::Kind::kCall, std::string(OpName(op_)),
                              fmt::format("{} of {}", what, pickle_internal::DescribeCallable(target)),
                              Abs(op_pos_), false});
  return absl::OkStatus();
}

absl::Status Machine::SetItems(PickleValue* dict, const std::vector<PickleValue*>& kv) {
  if (kv.size() % 2) return Error("odd number of items for key/value pairs");
  if (dict->kind != PickleKind::kDict) return Mutation(dict, "__setitem__");
  dict->items.insert(dict->items.end(), kv.begin(), kv.end());
  return absl::OkStatus();
}

absl::Status Machine::Run() {
  while (!stopped_) {
    if (pos_ >= in_.size()) {
      op_pos_ = pos_;
      return DataError(ctx_.file, Abs(pos_), "pickle", "ends before STOP");
    }
    op_pos_ = pos_;
    op_ = in_[pos_++];
    RETURN_IF_ERROR(Step(op_));
  }
  return absl::OkStatus();
}

absl::Status Machine::Step(uint8_t op) {
  switch (op) {
    case 0x80: {  // PROTO
      ASSIGN_OR_RETURN(uint64_t proto, ReadLE(1));
      if (proto > 5) return Error(fmt::format("protocol {} is newer than 5", proto));
      return absl::OkStatus();
    }
    case 0x95: {  // FRAME: a length hint; the opcodes inside are read as usual
      ASSIGN_OR_RETURN(uint64_t n, ReadLE(8));
      return Need(n);
    }
    case '.': {  // STOP
      ASSIGN_OR_RETURN(PickleValue * v, Pop());
      out_->root = v;
      out_->end = Abs(pos_);
      stopped_ = true;
      return absl::OkStatus();
    }
    case '(': marks_.push_back(stack_.size()); return absl::OkStatus();
    case '0':  // POP: an empty frame pops its mark, as in CPython
      if (stack_.size() > Floor()) { stack_.pop_back(); return absl::OkStatus(); }
      return PopMark().status();
    case '1': return PopMark().status();
    case '2': {
      ASSIGN_OR_RETURN(PickleValue * v, Top());
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'N': stack_.push_back(New(PickleKind::kNone)); return absl::OkStatus();
    case 0x88:
    case 0x89: {
      PickleValue* v = New(PickleKind::kBool);
      v->boolean = op == 0x88;
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'J': {
      ASSIGN_OR_RETURN(uint64_t v, ReadLE(4));
      PushInt(static_cast<int32_t>(static_cast<uint32_t>(v)));
      return absl::OkStatus();
    }
    case 'K':
    case 'M': {
      ASSIGN_OR_RETURN(uint64_t v, ReadLE(op == 'K' ? 1 : 2));
      PushInt(static_cast<int64_t>(v));
      return absl::OkStatus();
    }
    case 0x8a:
    case 0x8b: {
      ASSIGN_OR_RETURN(uint64_t n, ReadLE(op == 0x8a ? 1 : 4));
      if (op == 0x8b && (n & 0x80000000u)) return Error("negative length");
      ASSIGN_OR_RETURN(std::string_view b, ReadBytes(n));
      return PushLong({reinterpret_cast<const uint8_t*>(b.data()), b.size()});
    }
    case 'I':
    case 'L': {
      ASSIGN_OR_RETURN(std::string_view line, ReadLine());
      return PushDecimal(line);
    }
    case 'F': {
      ASSIGN_OR_RETURN(std::string_view line, ReadLine());
      PickleValue* v = New(PickleKind::kFloat);
      auto r = std::from_chars(line.data(), line.data() + line.size(), v->real);
      if (r.ec != std::errc() || r.ptr != line.data() + line.size()) return Error("not a float");
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'G': {
      ASSIGN_OR_RETURN(std::string_view b, ReadBytes(8));
      uint64_t bits = 0;
      for (char c : b) bits = (bits << 8) | static_cast<uint8_t>(c);  // big-endian
      PickleValue* v = New(PickleKind::kFloat);
      std::memcpy(&v->real, &bits, sizeof bits);
      stack_.push_back(v);
      return absl::OkStatus();
    }
    case 'S': {
      ASSIGN_OR_RETURN(std::string_view line, ReadLine());
      if (line.size() < 2 || (line[0] != '\'' && line[0] != '"') || line.back() != line[0])
        return Error("string is not quoted");
      std::string s = EscapeDecode(line.substr(1, line.size() - 2));
      return PushString(s, !IsValidUtf8(s));
    }
    case 'T':
    case 'U':
    case 'X':
    case 0x8c:
    case 0x8d:
    case 'B':
    case 'C':
    case 0x8e:
    case 0x96: {
      size_t width = (op == 'U' || op == 'C' || op == 0x8c) ? 1
                     : (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
      ASSIGN_OR_RETURN(uint64_t n, ReadLE(width));
      if (op == 'T' && (n & 0x80000000u)) return Error("negative length");
      ASSIGN_OR_RETURN(std::string_view s, ReadBytes(n));
      // torch.load decodes Python 2 str (BINSTRING) as UTF-8; keep bytes otherwise.
      bool binary = op == 'B' || op == 'C' || op == 0x8e || op == 0x96 ||
                    ((op == 'T' || op == 'U') && !IsValidUtf8(s));
      return PushString(s, binary);
    }
    case 'V': {
      ASSIGN_OR_RETURN(std::string_view line, ReadLine());
      return PushUnicodeEscaped(line);
    }
    case ')': stack_.push_back(New(PickleKind::kTuple)); return absl::OkStatus();
    case ']': stack_.push_back(New(PickleKind::kList)); return absl::OkStatus();
    case '}': stack_.push_back(New(PickleKind::kDict)); return absl::OkStatus();
    case 0x8f: stack_.push_back(New(PickleKind::kSet)); return absl::OkStatus();
    case 't':
    case 'l':
    case 0x91: {
      ASSIGN_OR_RETURN(auto items, PopMark());
      PickleKind k = op == 't' ? PickleKind::kTuple : op == 'l' ? PickleKind::kList : PickleKind::kSet;
      stack_.push_back(Seq(k, std::move(items)));
      return absl::OkStatus();
    }
    case 0x85:
    case 0x86:
    case 0x87: {
      size_t n = op - 0x84u;
      if (stack_.size() < Floor() + n) return Error("stack underflow");
      std::vector<PickleValue*> items(stack_.end() - static_cast<ptrdiff_t>(n), stack_.end());
      stack_.resize(stack_.size() - n);
      stack_.push_back(Seq(PickleKind::kTuple, std::move(items)));
      return absl::OkStatus();
    }
    case 'd': {
      ASSIGN_OR_RETURN(auto items, PopMark());
      PickleValue* d = New(PickleKind::kDict);
      RETURN_IF_ERROR(SetItems(d, items));
      stack_.push_back(d);
      return absl::OkStatus();
    }
    case 'a':
    case 'e':
    case 0x90: {
      std::vector<PickleValue*> items;
      if (op == 'a') {
        ASSIGN_OR_RETURN(PickleValue * v, Pop());
        items.push_back(v);
      } else {
        ASSIGN_OR_RETURN(items, PopMark());
      }
      ASSIGN_OR_RETURN(PickleValue * target, Top());
      PickleKind want = op == 0x90 ? PickleKind::kSet : PickleKind::kList;
      if (target->kind != want) return Mutation(target, op == 0x90 ? "add" : "append");
      target->items.insert(target->items.end(), items.begin(), items.end());
      return absl::OkStatus();
    }
    case 's': {
      ASSIGN_OR_RETURN(PickleValue * value, Pop());
      ASSIGN_OR_RETURN(PickleValue * key, Pop());
      ASSIGN_OR_RETURN(PickleValue * dict, Top());
      return SetItems(dict, {key, value});
    }
    case 'u': {
      ASSIGN_OR_RETURN(auto items, PopMark());
      ASSIGN_OR_RETURN(PickleValue * dict, Top());
      return SetItems(dict, items);
    }
    case 'p': {
      ASSIGN_OR_RETURN(uint64_t idx, LineIndex());
      return Memo(idx);
    }
    case 'q':
    case 'r': {
      ASSIGN_OR_RETURN(uint64_t idx, ReadLE(op == 'q' ? 1 : 4));
      return Memo(idx);
    }
    case 0x94: return Memo(memo_.size());
    case 'g': {
      ASSIGN_OR_RETURN(uint64_t idx, LineIndex());
      return Get(idx);
    }
    case 'h':
    case 'j': {
      ASSIGN_OR_RETURN(uint64_t idx, ReadLE(op == 'h' ? 1 : 4));
      return Get(idx);
    }
    case 'c':
    case 'i': {
      ASSIGN_OR_RETURN(std::string_view module, ReadLine());
      ASSIGN_OR_RETURN(std::string_view name, ReadLine());
      if (!IsValidUtf8(module) || !IsValidUtf8(name)) return Error("global name is not UTF-8");
      if (op == 'i' && marks_.empty()) return Error("no MARK on the stack");
      RETURN_IF_ERROR(Import(module, name));
      if (op == 'c') return absl::OkStatus();
      PickleValue* cls = stack_.back();  // INST: import, then call with the marked items
      stack_.pop_back();
      ASSIGN_OR_RETURN(auto args, PopMark());
      return Call(cls, Seq(PickleKind::kTuple, std::move(args)), nullptr);
    }
    case 0x93: {  // STACK_GLOBAL
      ASSIGN_OR_RETURN(PickleValue * name, Pop());
      ASSIGN_OR_RETURN(PickleValue * module, Pop());
      if (module->kind != PickleKind::kString || name->kind != PickleKind::kString) {
        if (!ctx_.scan) return Error("refused: module and name are not strings");
        out_->findings.push_back({PickleFinding::Kind::kImport, "STACK_GLOBAL",
                                  "<computed name>", Abs(op_pos_), false});
        stack_.push_back(New(PickleKind::kOpaque));
        return absl::OkStatus();
      }
      return Import(module->text, name->text);
    }
    case 0x82:
    case 0x83:
    case 0x84: {  // EXT*: a global through copyreg's registry, unknowable here
      ASSIGN_OR_RETURN(uint64_t code, ReadLE(op == 0x82 ? 1 : op == 0x83 ? 2 : 4));
      if (!ctx_.scan)
        return Error(fmt::format("refused: extension code {} names a global through copyreg", code));
      out_->findings.push_back({PickleFinding::Kind::kExtension, std::string(OpName(op)),
                                fmt::format("extension code {}", code), Abs(op_pos_), false});
      stack_.push_back(New(PickleKind::kOpaque));
      return absl::OkStatus();
    }
    case 'R':
    case 0x81: {  // REDUCE, NEWOBJ
      ASSIGN_OR_RETURN(PickleValue * args, Pop());
      ASSIGN_OR_RETURN(PickleValue * callable, Pop());
      return Call(callable, args, nullptr);
    }
    case 0x92: {  // NEWOBJ_EX
      ASSIGN_OR_RETURN(PickleValue * kwargs, Pop());
      ASSIGN_OR_RETURN(PickleValue * args, Pop());
      ASSIGN_OR_RETURN(PickleValue * callable, Pop());
      return Call(callable, args, kwargs);
    }
    case 'o': {  // OBJ: MARK cls args... OBJ
      ASSIGN_OR_RETURN(auto items, PopMark());
      if (items.empty()) return Error("no class on the marked stack");
      PickleValue* cls = items.front();
      items.erase(items.begin());
      return Call(cls, Seq(PickleKind::kTuple, std::move(items)), nullptr);
    }
    case 'b': {
      ASSIGN_OR_RETURN(PickleValue * state, Pop());
      ASSIGN_OR_RETURN(PickleValue * target, Top());
      if (target->kind == PickleKind::kOpaque && ctx_.scan) return absl::OkStatus();
      if (target->kind == PickleKind::kDict)
        return pickle_internal::ApplyBuild(heap_, target, state, Abs(op_pos_));
      return Mutation(target, "__setstate__");
    }
    case 'Q': {
      ASSIGN_OR_RETURN(PickleValue * pid, Pop());
      return Persistent(pid);
    }
    case 'P': {
      ASSIGN_OR_RETURN(std::string_view line, ReadLine());
      PickleValue* pid = New(PickleKind::kString);
      pid->text.assign(line);
      return Persistent(pid);
    }
    case 0x97: return Error("out-of-band buffers are not supported");
    case 0x98: return Top().status();  // READONLY_BUFFER: no-op on our values
    default:
      return DataError(ctx_.file, Abs(op_pos_), "pickle",
                       fmt::format("unknown opcode 0x{:02x}", op));
  }
}

}  // namespace

absl::StatusOr<PickleResult> RunPickle(std::span<const uint8_t> bytes, const PickleContext& ctx) {
  PickleResult result;
  absl::Status s;
  {
    Machine m(bytes, ctx, &result);
    s = m.Run();
  }
  if (s.ok()) return result;
  if (!ctx.scan) return s;
  result.error = s;
  result.root = nullptr;
  return result;
}

}  // namespace hart::formats
