#!/usr/bin/python3
"""Independent numpy implementation of mergekit's merge methods, to check
`hart merge` output (tests/workshop/merge_test.cc).

  merge_reference.py check RECIPE.yaml MERGED.gguf REF=INPUT.gguf ...
      Reads the recipe (PyYAML), the input GGUFs and the merged GGUF (a GGUF
      reader of its own), recomputes every output tensor and compares:
      names, order, types and shapes exactly; values exactly where the
      method's float32 operations are spelled out in the same order
      (linear, task_arithmetic, ties, dare_*; passthrough is a byte copy),
      within 2e-6 relative for slerp (its norms summed in another order).
      Prints "ok N tensors" or the first mismatch and exits 1.
  merge_reference.py reshape IN.gguf OUT.gguf TENSOR
      Writes IN with TENSOR's first dimension halved (a model whose shapes
      do not match, for the error tests).

The methods follow mergekit (arcee-ai/mergekit, merge_methods/): linear,
slerp (lerp when |cos| > 0.9995), task_arithmetic, ties (magnitude top-k per
model, sign elected by the sum of weighted deltas), dare_linear / dare_ties
(random drop with rescale by 1/density). DARE's random stream is Hartonomous'
(splitmix64 of seed, tensor name and element index; see merge_math.h),
reimplemented here from its definition.
"""
import re
import struct
import sys

import numpy as np
import yaml

# ---------------------------------------------------------------- GGUF

TYPES = {0: ("F32", 4), 1: ("F16", 2), 30: ("BF16", 2), 8: ("Q8_0", 34)}
IDS = {v[0]: k for k, v in TYPES.items()}


class Gguf:
    def __init__(self, path):
        self.buf = open(path, "rb").read()
        self.pos = 0
        assert self.buf[:4] == b"GGUF", path
        self.pos = 4
        self.version, nt, nkv = struct.unpack_from("<IQQ", self.buf, self.pos)
        self.pos += 20
        self.kv = {}
        self.kv_raw = []  # (start, end) byte ranges of each kv, for rewriting
        for _ in range(nkv):
            start = self.pos
            k = self.str()
            t = self.u32()
            self.kv[k] = self.value(t)
            self.kv_raw.append((k, self.buf[start:self.pos]))
        self.tensors = []
        for _ in range(nt):
            name = self.str()
            nd = self.u32()
            dims = struct.unpack_from(f"<{nd}Q", self.buf, self.pos)
            self.pos += 8 * nd
            t, off = struct.unpack_from("<IQ", self.buf, self.pos)
            self.pos += 12
            self.tensors.append((name, TYPES[t][0], tuple(reversed(dims)), off))
        align = self.kv.get("general.alignment", 32)
        self.data = (self.pos + align - 1) // align * align
        self.align = align

    def u32(self):
        v = struct.unpack_from("<I", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def str(self):
        n = struct.unpack_from("<Q", self.buf, self.pos)[0]
        self.pos += 8
        s = self.buf[self.pos:self.pos + n].decode()
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
        raise ValueError(f"gguf type {t}")

    def names(self):
        return [t[0] for t in self.tensors]

    def info(self, name):
        for t in self.tensors:
            if t[0] == name:
                return t
        return None

    def raw(self, name):
        _, typ, shape, off = self.info(name)
        n = int(np.prod(shape))
        size = n // 32 * 34 if typ == "Q8_0" else n * TYPES[IDS[typ]][1]
        return self.buf[self.data + off:self.data + off + size]

    def f32(self, name):
        _, typ, shape, _ = self.info(name)
        raw = self.raw(name)
        if typ == "F32":
            a = np.frombuffer(raw, dtype=np.float32)
        elif typ == "F16":
            a = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif typ == "BF16":
            a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:  # Q8_0
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
            d = b[:, :2].copy().view(np.float16).astype(np.float32)
            q = b[:, 2:].copy().view(np.int8).astype(np.float32)
            a = (q * d).reshape(-1)
        return a.astype(np.float32)


def to_type(a, typ):
    a = np.asarray(a, dtype=np.float32)
    if typ == "F32":
        return a
    if typ == "F16":
        return a.astype(np.float16).astype(np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
    return ((u.astype(np.uint32)) << 16).view(np.float32)

# ---------------------------------------------------------------- DARE stream

M64 = (1 << 64) - 1


def splitmix64_scalar(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def splitmix64(z):
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fnv1a(s):
    h = 0xCBF29CE484222325
    for c in s.encode():
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def dare_keep(seed, name, input_index, n, density):
    key = splitmix64_scalar(seed ^ splitmix64_scalar(fnv1a(name) ^ (input_index + 1)))
    with np.errstate(over="ignore"):
        r = splitmix64(np.uint64(key) + np.arange(n, dtype=np.uint64))
    u = (r >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return u < density

# ---------------------------------------------------------------- methods


def evaluate(setting, name, t):
    if setting is None:
        return None
    if isinstance(setting, list) and setting and isinstance(setting[0], dict):
        for cond in setting:
            f = cond.get("filter")
            if f in (None, "*") or f in name or (f == "self_attn" and ".attn_" in name) or \
                    (f == "mlp" and ".ffn_" in name):
                return evaluate(cond["value"], name, t)
        return None
    if isinstance(setting, list):
        if len(setting) == 1:
            return float(setting[0])
        scaled = t * (len(setting) - 1)
        i0 = int(np.floor(scaled))
        i1 = min(len(setting) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * setting[i0] + frac * setting[i1]
    return float(setting)


def param(p, name, t, *levels):
    for lv in levels:
        if lv and p in lv:
            v = evaluate(lv[p], name, t)
            if v is not None:
                return v
    return None


def merge(method, base_i, xs, weights, densities, t, name, seed, normalize, rescale, lam):
    f32 = np.float32
    if method == "linear":
        acc = np.zeros_like(xs[0])
        for w, x in zip(weights, xs):
            acc = acc + f32(w) * x
        if normalize:
            acc = acc / f32(sum(weights))
        return acc
    if method == "slerp":
        v0, v1 = xs[base_i].astype(np.float64), xs[1 - base_i].astype(np.float64)
        n0, n1 = np.linalg.norm(v0), np.linalg.norm(v1)
        a = v0 / n0 if n0 > 1e-8 else v0
        b = v1 / n1 if n1 > 1e-8 else v1
        dot = np.sum(a * b)
        if abs(dot) > 0.9995:
            res = (1 - t) * v0 + t * v1
        else:
            th0 = np.arccos(dot)
            s0 = np.sin(th0 - th0 * t) / np.sin(th0)
            s1 = np.sin(th0 * t) / np.sin(th0)
            res = s0 * v0 + s1 * v1
        return res.astype(np.float32)
    base = xs[base_i]
    wds, ws = [], []
    for i, x in enumerate(xs):
        if i == base_i:
            continue
        d = x - base
        dens = densities[i]
        if method == "ties" and dens < 1:
            k = int(dens * d.size)
            keep = np.zeros(d.size, dtype=bool)
            keep[np.argsort(-np.abs(d), kind="stable")[:k]] = True
            d = np.where(keep, d, f32(0))
        if method in ("dare_linear", "dare_ties") and dens < 1:
            keep = dare_keep(seed, name, i, d.size, dens)
            d = np.where(keep, d / f32(dens) if rescale else d, f32(0)).astype(np.float32)
        wds.append(d * f32(weights[i]))
        ws.append(weights[i])
    if method in ("ties", "dare_ties"):
        total = np.zeros_like(base)
        for wd in wds:
            total = total + wd
        positive = total >= 0
        mixed = np.zeros_like(base)
        div = np.zeros_like(base)
        for wd, w in zip(wds, ws):
            agree = np.where(positive, wd > 0, wd < 0)
            mixed = mixed + np.where(agree, wd, f32(0))
            div = div + np.where(agree, f32(w), f32(0))
        div = np.where(div == 0, f32(1), div)
    else:
        mixed = np.zeros_like(base)
        for wd in wds:
            mixed = mixed + wd
        s = f32(0)
        for w in ws:
            s = s + f32(w)
        div = f32(1) if abs(s) < 1e-8 else s
    if normalize:
        mixed = mixed / div
    return base + mixed * f32(lam)


def layer_of(name):
    m = re.match(r"blk\.(\d+)\.(.*)$", name)
    return (int(m.group(1)), m.group(2)) if m else None


def check(recipe_path, merged_path, inputs):
    r = yaml.safe_load(open(recipe_path))
    models = {k: Gguf(v) for k, v in inputs.items()}
    out = Gguf(merged_path)
    method = r["merge_method"]
    g = r.get("parameters") or {}
    seed = int(r.get("random_seed", 0))
    default_norm = method in ("linear", "ties")
    normalize = bool(evaluate(g.get("normalize"), "", 0)) if "normalize" in g else default_norm
    rescale = bool(evaluate(g.get("rescale"), "", 0)) if "rescale" in g else method.startswith("dare")
    lam = evaluate(g.get("lambda"), "", 0) if "lambda" in g else 1.0
    base = r.get("base_model")
    out_dtype = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}.get(r.get("dtype"))
    if "slices" in r:
        template = models[base or r["slices"][0]["sources"][0]["model"]]
    else:
        template = models[base or r["models"][0]["model"]]
    # Expected output: list of (name, [(model, tensor, per-model params, slice params)], t).
    plan = []
    first_layer = next(i for i, n in enumerate(template.names()) if layer_of(n))
    if "slices" not in r:
        nl = template.kv[template.kv["general.architecture"] + ".block_count"]
        for i, n in enumerate(template.names()):
            lo = layer_of(n)
            t = lo[0] / (nl - 1) if lo and nl > 1 else (0.0 if i < first_layer else 1.0)
            srcs = [(m["model"], n, m.get("parameters") if isinstance(m, dict) else None)
                    for m in r["models"]]
            plan.append((n, srcs, None, t))
    else:
        def nonlayer(i, n, sl, t):
            plan.append((n, [(s["model"], n, s.get("parameters")) for s in sl["sources"]], sl.get("parameters"), t))
        for i, n in enumerate(template.names()[:first_layer]):
            nonlayer(i, n, r["slices"][0], 0.0)
        out_layer = 0
        for sl in r["slices"]:
            a, b = sl["sources"][0]["layer_range"]
            for j in range(b - a):
                t = j / (b - a - 1) if b - a > 1 else 0.0
                first = models[sl["sources"][0]["model"]]
                for n in first.names():
                    lo = layer_of(n)
                    if not lo or lo[0] != a + j:
                        continue
                    srcs = [(s["model"], f"blk.{s['layer_range'][0] + j}.{lo[1]}", s.get("parameters"))
                            for s in sl["sources"]]
                    plan.append((f"blk.{out_layer}.{lo[1]}", srcs, sl.get("parameters"), t))
                out_layer += 1
        for n in [n for n in template.names()[first_layer:] if not layer_of(n)]:
            nonlayer(0, n, r["slices"][-1], 1.0)
    got = out.names()
    want = [p[0] for p in plan]
    if got != want:
        print(f"tensor names differ:\n got  {got}\n want {want}")
        return 1
    for name, srcs, slp, t in plan:
        if method != "linear" and method != "passthrough":
            bi = [i for i, s in enumerate(srcs) if s[0] == base]
            if bi:
                srcs = [srcs[bi[0]]] + srcs[:bi[0]] + srcs[bi[0] + 1:]
            else:
                srcs = [(base, srcs[0][1], None)] + srcs
        _, otyp, oshape, _ = out.info(name)
        m0, n0, _ = srcs[0]
        _, ityp, ishape, _ = models[m0].info(n0)
        if oshape != ishape:
            print(f"{name}: shape {oshape}, want {ishape}")
            return 1
        if method == "passthrough":
            if out.raw(name) != models[m0].raw(n0) or otyp != ityp:
                print(f"{name}: passthrough bytes differ from {m0}:{n0}")
                return 1
            continue
        want_typ = (ityp if ityp in ("F32", "F16", "BF16") else "F32") if len(ishape) <= 1 else \
            (out_dtype or ityp)
        if otyp != want_typ:
            print(f"{name}: type {otyp}, want {want_typ}")
            return 1
        xs = [models[m].f32(n) for m, n, _ in srcs]
        pname = n0
        weights = [param("weight", pname, t, p, slp, g) for _, _, p in srcs]
        weights = [1.0 if w is None else w for w in weights]
        dens = [param("density", pname, t, p, slp, g) for _, _, p in srcs]
        dens = [1.0 if d is None else d for d in dens]
        tt = param("t", pname, t, slp, g)
        exp = merge(method, 0, xs, weights, dens, tt, name, seed, normalize, rescale, lam)
        exp = to_type(exp, otyp)
        got_v = out.f32(name)
        if method == "slerp":
            ok = np.allclose(got_v, exp, rtol=2e-6 if otyp == "F32" else 1e-2, atol=1e-7)
        else:
            ok = np.array_equal(got_v, exp)
        if not ok:
            bad = np.flatnonzero(got_v != exp)
            i = bad[0] if len(bad) else 0
            print(f"{name}: {len(bad)} of {got_v.size} values differ; first at {i}: got {got_v[i]!r} "
                  f"want {exp[i]!r} (inputs {[x[i] for x in xs]})")
            return 1
    print(f"ok {len(plan)} tensors")
    return 0


def reshape(src, dst, tensor):
    g = Gguf(src)
    kvs = b"".join(raw for _, raw in g.kv_raw)
    infos, blobs, off = b"", [], 0
    for name, typ, shape, _ in g.tensors:
        raw = g.raw(name)
        if name == tensor:
            shape = (shape[0] // 2,) + tuple(shape[1:])
            raw = raw[:len(raw) // 2]
        enc = name.encode()
        infos += struct.pack("<Q", len(enc)) + enc + struct.pack("<I", len(shape))
        infos += b"".join(struct.pack("<Q", d) for d in reversed(shape))
        infos += struct.pack("<IQ", IDS[typ], off)
        blobs.append(raw)
        off += (len(raw) + g.align - 1) // g.align * g.align
    head = b"GGUF" + struct.pack("<IQQ", 3, len(g.tensors), len(g.kv_raw)) + kvs + infos
    with open(dst, "wb") as f:
        f.write(head + b"\0" * (-len(head) % g.align))
        for raw in blobs:
            f.write(raw + b"\0" * (-len(raw) % g.align))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], dict(a.split("=", 1) for a in sys.argv[4:])))
    if sys.argv[1] == "reshape":
        sys.exit(reshape(sys.argv[2], sys.argv[3], sys.argv[4]))
    sys.exit(2)
