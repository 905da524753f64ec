#!/usr/bin/python3
"""LoRA fixtures and an independent numpy check of `hart merge-lora`
(tests/workshop/lora_test.cc).

  lora_reference.py make BASE.gguf OUT_DIR [--wrong]
      Writes OUT_DIR/peft/{adapter_model.safetensors, adapter_config.json}
      (r 8, lora_alpha 16, q_proj, v_proj and down_proj of every layer, with
      Hugging Face names and unpermuted rows) and OUT_DIR/adapter.gguf (the
      same adapter as llama.cpp writes it: GGUF names, q/k rows permuted as
      the base's). --wrong: A has the wrong input width (another base).
  lora_reference.py check BASE.gguf MERGED.gguf OUT_DIR SCALE
      Recomputes W + SCALE * alpha / r * B @ A (B's rows permuted for
      attn_q / attn_k) in float64 for each target and compares with the
      merged tensors (float32 rounding); every other tensor must be byte
      identical. Prints "ok N" or the first mismatch and exits 1.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from merge_reference import Gguf  # noqa: E402

R, ALPHA = 8, 16.0
MODULES = {"self_attn.q_proj": "attn_q", "self_attn.v_proj": "attn_v", "mlp.down_proj": "ffn_down"}


def perm(rows, n_head):
    return np.arange(rows).reshape(n_head, 2, rows // n_head // 2).swapaxes(1, 2).reshape(rows)


def adapter(base, wrong=False):
    rng = np.random.default_rng(99)
    arch = base.kv["general.architecture"]
    layers = base.kv[arch + ".block_count"]
    out = []
    for i in range(layers):
        for hf, g in MODULES.items():
            _, _, shape, _ = base.info(f"blk.{i}.{g}.weight")
            rows, cols = shape
            a = rng.normal(0, 0.05, (R, cols + (8 if wrong else 0))).astype(np.float32)
            b = rng.normal(0, 0.05, (rows, R)).astype(np.float32)
            out.append((i, hf, g, a, b))
    return out


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for name, t in tensors:
        raw = t.tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf_adapter(path, arch, tensors):
    kv = [("general.architecture", 8, gstr(arch)), ("general.type", 8, gstr("adapter")),
          ("adapter.type", 8, gstr("lora")), ("adapter.lora.alpha", 6, struct.pack("<f", ALPHA))]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    head += b"".join(gstr(k) + struct.pack("<I", t) + v for k, t, v in kv)
    off, blobs = 0, []
    for name, t in tensors:
        head += gstr(name) + struct.pack("<I", 2) + struct.pack("<QQ", t.shape[1], t.shape[0])
        head += struct.pack("<IQ", 0, off)
        raw = t.tobytes()
        blobs.append(raw + b"\0" * (-len(raw) % 32))
        off += len(blobs[-1])
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % 32) + b"".join(blobs))


def make(base_path, out, wrong):
    base = Gguf(base_path)
    arch = base.kv["general.architecture"]
    heads = base.kv[arch + ".attention.head_count"]
    os.makedirs(os.path.join(out, "peft"), exist_ok=True)
    st, gg = [], []
    for i, hf, g, a, b in adapter(base, wrong):
        st.append((f"base_model.model.model.layers.{i}.{hf}.lora_A.weight", a))
        st.append((f"base_model.model.model.layers.{i}.{hf}.lora_B.weight", b))
        bp = b[perm(b.shape[0], heads)] if g == "attn_q" else b
        gg.append((f"blk.{i}.{g}.weight.lora_a", a))
        gg.append((f"blk.{i}.{g}.weight.lora_b", np.ascontiguousarray(bp)))
    write_safetensors(os.path.join(out, "peft", "adapter_model.safetensors"), st)
    with open(os.path.join(out, "peft", "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": R, "lora_alpha": ALPHA, "bias": "none",
                   "target_modules": ["q_proj", "v_proj", "down_proj"],
                   "base_model_name_or_path": "tiny-llama"}, f)
    write_gguf_adapter(os.path.join(out, "adapter.gguf"), arch, gg)
    return 0


def check(base_path, merged_path, out, scale):
    base, merged = Gguf(base_path), Gguf(merged_path)
    arch = base.kv["general.architecture"]
    heads = base.kv[arch + ".attention.head_count"]
    targets = {}
    for i, hf, g, a, b in adapter(base):
        bp = b[perm(b.shape[0], heads)] if g == "attn_q" else b
        targets[f"blk.{i}.{g}.weight"] = (a.astype(np.float64), bp.astype(np.float64))
    if merged.names() != base.names():
        print("tensor names differ")
        return 1
    for name in base.names():
        if name not in targets:
            if merged.raw(name) != base.raw(name):
                print(f"{name}: changed but not targeted")
                return 1
            continue
        a, b = targets[name]
        shape = base.info(name)[2]
        w = base.f32(name).astype(np.float64).reshape(shape)
        want = w + scale * ALPHA / R * (b @ a)
        got = merged.f32(name).reshape(shape)
        if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
            i = np.unravel_index(np.argmax(np.abs(got - want)), shape)
            print(f"{name}: got {got[i]} want {want[i]} at {i}")
            return 1
    print(f"ok {len(targets)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "make":
        sys.exit(make(sys.argv[2], sys.argv[3], "--wrong" in sys.argv))
    if sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
    sys.exit(2)
