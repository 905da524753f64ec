#!/usr/bin/python3
"""Compares two GGUF files tensor by tensor: names, order, types, shapes and
bytes, plus the quantization keys (general.file_type,
general.quantization_version). Used by bench/llama_quantize_xcheck.sh to
check `hart quantize` + `hart export` against llama.cpp's llama-quantize
(a local cross-check, not a project test: CI has no llama.cpp).

  gguf_compare.py A.gguf B.gguf [--quiet]

Prints one line per tensor that differs and a summary line; exits 1 when
any tensor's type, shape or bytes, or one of those keys, differ. The order
of the tensors in the file is reported but not counted (llama-quantize
writes them in its loader's order, sorted by layer then name; hart keeps
the source file's order).
"""
import struct
import sys

# ggml type id -> (name, block elements, block bytes)
TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
    30: ("BF16", 1, 2),
}
KEYS = ("general.file_type", "general.quantization_version")


class Gguf:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        if self.buf[:4] != b"GGUF":
            raise SystemExit(f"{path}: not a GGUF")
        self.pos = 4
        _, nt, nkv = struct.unpack_from("<IQQ", self.buf, self.pos)
        self.pos += 20
        self.kv = {}
        for _ in range(nkv):
            k = self.str()
            self.kv[k] = self.value(self.u32())
        self.tensors = []
        for _ in range(nt):
            name = self.str()
            nd = self.u32()
            dims = struct.unpack_from(f"<{nd}Q", self.buf, self.pos)
            self.pos += 8 * nd
            t, off = struct.unpack_from("<IQ", self.buf, self.pos)
            self.pos += 12
            self.tensors.append((name, t, tuple(dims), off))
        align = self.kv.get("general.alignment", 32)
        self.data = (self.pos + align - 1) // align * align

    def u32(self):
        v = struct.unpack_from("<I", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def str(self):
        n = struct.unpack_from("<Q", self.buf, self.pos)[0]
        self.pos += 8
        s = self.buf[self.pos:self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return s

    def value(self, t):
        fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
        if t in fmt:
            v = struct.unpack_from("<" + fmt[t], self.buf, self.pos)[0]
            self.pos += struct.calcsize(fmt[t])
            return v
        if t == 8:
            return self.str()
        if t == 9:
            et = self.u32()
            n = struct.unpack_from("<Q", self.buf, self.pos)[0]
            self.pos += 8
            return [self.value(et) for _ in range(n)]
        raise SystemExit(f"gguf value type {t}")

    def raw(self, tensor):
        _, t, dims, off = tensor
        n = 1
        for d in dims:
            n *= d
        _, be, bb = TYPES[t]
        return self.buf[self.data + off:self.data + off + n // be * bb]


def type_name(t):
    return TYPES[t][0] if t in TYPES else f"type{t}"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quiet = "--quiet" in sys.argv
    if len(args) != 2:
        raise SystemExit(__doc__)
    a, b = Gguf(args[0]), Gguf(args[1])
    bad = 0
    for k in KEYS:
        if a.kv.get(k) != b.kv.get(k):
            print(f"  key {k}: {a.kv.get(k)} vs {b.kv.get(k)}")
            bad += 1
    bn = {t[0]: t for t in b.tensors}
    order = "same order"
    if sorted(t[0] for t in a.tensors) != sorted(t[0] for t in b.tensors):
        print("  the files hold different tensor names")
        bad += 1
    elif [t[0] for t in a.tensors] != [t[0] for t in b.tensors]:
        # Not a difference of bytes: llama-quantize writes tensors in its
        # loader's order (non-layer tensors by name, then each layer's by
        # name), hart in the source file's order.
        order = "in another order"
    same = 0
    types = {}
    for ta in a.tensors:
        tb = bn.get(ta[0])
        if tb is None:
            print(f"  {ta[0]}: missing from the second file")
            bad += 1
            continue
        key = f"{type_name(ta[1])}"
        if ta[1] != tb[1] or ta[2] != tb[2]:
            print(f"  {ta[0]}: {type_name(ta[1])} {list(ta[2])} vs {type_name(tb[1])} {list(tb[2])}")
            bad += 1
            continue
        ra, rb = a.raw(ta), b.raw(tb)
        if ra != rb:
            _, be, bb = TYPES[ta[1]]
            blocks = len(ra) // bb
            diff = sum(1 for i in range(blocks) if ra[i * bb:(i + 1) * bb] != rb[i * bb:(i + 1) * bb])
            first = next(i for i in range(len(ra)) if ra[i] != rb[i])
            print(f"  {ta[0]}: {type_name(ta[1])} bytes differ in {diff} of {blocks} blocks (first at byte {first})")
            bad += 1
            continue
        same += 1
        types[key] = types.get(key, 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
    if not quiet or bad:
        print(f"{len(a.tensors)} tensors, {same} byte-identical ({summary}), {order}; {bad} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
