#!/usr/bin/python3
"""An independent reference for `hart export --format hf`: the Hugging Face
Llama-family forward pass (modeling_llama / modeling_qwen2 / modeling_qwen3:
rotate_half RoPE on the q/k rows as HF orders them, repeat_kv for grouped
query attention, q/k/v biases when present, q/k norms for qwen3, tied
embeddings when lm_head.weight is absent), in numpy float64, reading only
DIR/config.json and DIR/model.safetensors (F32, F16 or BF16).

  hf_reference.py DIR N TOKEN...   prints the N greedy tokens after the
                                   prompt TOKEN... as a JSON list
"""
import json
import math
import struct
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "F32":
            v = np.frombuffer(raw, np.float32)
        elif t["dtype"] == "F16":
            v = np.frombuffer(raw, np.float16).astype(np.float32)
        elif t["dtype"] == "BF16":
            v = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{name}: dtype {t['dtype']} not handled")
        out[name] = v.astype(np.float64).reshape(t["shape"])
    return out


def inv_freq(cfg, hd):
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    s = cfg.get("rope_scaling")
    if s:
        kind = s.get("rope_type", s.get("type"))
        if kind == "linear":
            inv = inv / s["factor"]
        elif kind == "llama3":
            factor, lo, hi = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
            orig = s["original_max_position_embeddings"]
            wavelen = 2 * math.pi / inv
            smooth = (orig / wavelen - lo) / (hi - lo)
            scaled = (1 - smooth) * inv / factor + smooth * inv
            inv = np.where(wavelen < orig / hi, inv, np.where(wavelen > orig / lo, inv / factor, scaled))
        else:
            raise SystemExit(f"rope scaling {kind} not handled")
    return inv


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def forward(cfg, W, tokens):
    dim, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or dim // nh
    eps = cfg["rms_norm_eps"]
    qwen3 = cfg["model_type"] == "qwen3"
    n = len(tokens)
    x = W["model.embed_tokens.weight"][tokens]
    pos = np.arange(n, dtype=np.float64)
    ang = pos[:, None] * inv_freq(cfg, hd)[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"], eps)

        def proj(name, rows):
            y = h @ W[p + f"self_attn.{name}_proj.weight"].T
            b = W.get(p + f"self_attn.{name}_proj.bias")
            return (y + b if b is not None else y).reshape(n, rows, hd)

        q, k, v = proj("q", nh), proj("k", nkv), proj("v", nkv)
        if qwen3:
            q = rms(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, W[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        att = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", att, v).reshape(n, nh * hd)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight")
    if head is None:
        head = W["model.embed_tokens.weight"]
    return x[-1] @ head.T


def main():
    d, n, prompt = sys.argv[1], int(sys.argv[2]), [int(t) for t in sys.argv[3:]]
    with open(d + "/config.json") as f:
        cfg = json.load(f)
    W = load(d + "/model.safetensors")
    tokens, out = list(prompt), []
    for _ in range(n):
        nxt = int(np.argmax(forward(cfg, W, tokens)))
        out.append(nxt)
        tokens.append(nxt)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
