#!/usr/bin/python3
"""An independent numpy implementation of ggml's reference block quantizers
(quantize_row_*_ref in ggml-quants.c) and block layouts, for the workshop's
tests: every float32 operation in ggml's order (sequential sums, no fused
multiply-adds), round-half-even through 1.5*2^23 (nearest_int), roundf
(half away from zero) for Q8_0, truncation toward zero for the int8 casts.

  quant_reference.py TYPE IN.f32 ROW OUT.bin     quantize rows of ROW floats
  quant_reference.py --cases DIR                 write DIR/input.f32 (rows of
      512 with the edge cases) and DIR/<type>.bin for every type

Vectorized across blocks; loops run over the elements of a block, as ggml's.
"""
import os
import sys

import numpy as np

F = np.float32
QK = 32
QKK = 256


def f16_bits(a):
    return np.asarray(a, dtype=np.float32).astype(np.float16).view(np.uint16)


def f16_val(bits):
    return np.asarray(bits, dtype=np.uint16).view(np.float16).astype(np.float32)


def nearest_int(f):
    with np.errstate(all="ignore"):
        v = (np.asarray(f, dtype=F) + F(12582912.0)).astype(F)
    i = v.view(np.int32).astype(np.int64)
    return (i & 0x007FFFFF) - 0x00400000


def trunc_int(f):
    """C's (int) cast of a float: toward zero."""
    with np.errstate(all="ignore"):
        return np.trunc(np.asarray(f, dtype=F)).astype(np.int64)


def round_away(f):
    a = np.abs(f).astype(F)
    t = np.floor(a)
    r = t + ((a - t).astype(F) >= F(0.5))
    return (np.sign(f) * r).astype(np.int64)


def safe_div(a, b):
    with np.errstate(all="ignore"):
        return (np.asarray(a, dtype=F) / np.asarray(b, dtype=F)).astype(F)


# ------------------------------------------------------------------ 32-blocks

def absmax_signed(x):
    """(amax, the first value with the largest magnitude), scanned in order."""
    amax = np.zeros(x.shape[0], F)
    mx = np.zeros(x.shape[0], F)
    for j in range(x.shape[1]):
        a = np.abs(x[:, j])
        upd = amax < a
        amax = np.where(upd, a, amax)
        mx = np.where(upd, x[:, j], mx)
    return amax, mx


def q8_0(x):
    b = x.reshape(-1, QK)
    amax = np.zeros(b.shape[0], F)
    for j in range(QK):
        amax = np.maximum(amax, np.abs(b[:, j]))
    d = safe_div(amax, F(127))
    idv = np.where(d != 0, safe_div(F(1), d), F(0)).astype(F)
    q = round_away((b * idv[:, None]).astype(F)).astype(np.int8)
    out = np.zeros((b.shape[0], 34), np.uint8)
    out[:, 0:2] = f16_bits(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def q4_0(x):
    b = x.reshape(-1, QK)
    _, mx = absmax_signed(b)
    d = safe_div(mx, F(-8))
    idv = np.where(d != 0, safe_div(F(1), d), F(0)).astype(F)
    v = ((b * idv[:, None]).astype(F) + F(8.5)).astype(F)
    q = np.minimum(15, trunc_int(v))
    out = np.zeros((b.shape[0], 18), np.uint8)
    out[:, 0:2] = f16_bits(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    return out.tobytes()


def minmax(b):
    mn = np.full(b.shape[0], np.finfo(F).max, F)
    mx = np.full(b.shape[0], -np.finfo(F).max, F)
    for j in range(b.shape[1]):
        mn = np.where(b[:, j] < mn, b[:, j], mn)
        mx = np.where(b[:, j] > mx, b[:, j], mx)
    return mn, mx


def q4_1(x):
    b = x.reshape(-1, QK)
    mn, mx = minmax(b)
    d = safe_div((mx - mn).astype(F), F(15))
    idv = np.where(d != 0, safe_div(F(1), d), F(0)).astype(F)
    v = (((b - mn[:, None]).astype(F) * idv[:, None]).astype(F) + F(0.5)).astype(F)
    q = np.minimum(15, trunc_int(v))
    out = np.zeros((b.shape[0], 20), np.uint8)
    out[:, 0:2] = f16_bits(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = f16_bits(mn).view(np.uint8).reshape(-1, 2)
    out[:, 4:] = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    return out.tobytes()


def pack5(q):
    """32 five-bit values per row -> (qh as 4 bytes, qs 16 bytes)."""
    q = q.astype(np.int64)
    qs = ((q[:, :16] & 15) | ((q[:, 16:] & 15) << 4)).astype(np.uint8)
    hi = (q >> 4) & 1
    qh = np.zeros(q.shape[0], np.uint64)
    for j in range(32):
        qh |= hi[:, j].astype(np.uint64) << np.uint64(j)
    return qh.astype("<u4").view(np.uint8).reshape(-1, 4), qs


def q5_0(x):
    b = x.reshape(-1, QK)
    _, mx = absmax_signed(b)
    d = safe_div(mx, F(-16))
    idv = np.where(d != 0, safe_div(F(1), d), F(0)).astype(F)
    v = ((b * idv[:, None]).astype(F) + F(16.5)).astype(F)
    q = np.minimum(31, trunc_int(v))
    qh, qs = pack5(q)
    out = np.zeros((b.shape[0], 22), np.uint8)
    out[:, 0:2] = f16_bits(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:6] = qh
    out[:, 6:] = qs
    return out.tobytes()


def q5_1(x):
    b = x.reshape(-1, QK)
    mn, mx = minmax(b)
    d = safe_div((mx - mn).astype(F), F(31))
    idv = np.where(d != 0, safe_div(F(1), d), F(0)).astype(F)
    v = (((b - mn[:, None]).astype(F) * idv[:, None]).astype(F) + F(0.5)).astype(F)
    q = trunc_int(v) & 0xFF  # ggml casts to uint8_t without a clamp
    qh, qs = pack5(q)
    out = np.zeros((b.shape[0], 24), np.uint8)
    out[:, 0:2] = f16_bits(d).view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = f16_bits(mn).view(np.uint8).reshape(-1, 2)
    out[:, 4:8] = qh
    out[:, 8:] = qs
    return out.tobytes()


# ------------------------------------------------------------------ K-quants

def make_qkx2(x, w, nmax, rmin, rdelta, nstep):
    """Per row of x (n values): (scale, the_min, L) as ggml's make_qkx2_quants."""
    n = x.shape[1]
    mn = x[:, 0].copy()
    mx = x[:, 0].copy()
    sum_w = w[:, 0].copy()
    sum_x = (sum_w * x[:, 0]).astype(F)
    for i in range(1, n):
        mn = np.where(x[:, i] < mn, x[:, i], mn)
        mx = np.where(x[:, i] > mx, x[:, i], mx)
        sum_w = (sum_w + w[:, i]).astype(F)
        sum_x = (sum_x + (w[:, i] * x[:, i]).astype(F)).astype(F)
    mn = np.where(mn > 0, F(0), mn).astype(F)
    flat = mx == mn
    rng = (mx - mn).astype(F)
    iscale = safe_div(F(nmax), rng)
    scale = safe_div(F(1), iscale)
    L = np.clip(nearest_int((iscale[:, None] * (x - mn[:, None]).astype(F)).astype(F)), 0, nmax)
    best = np.zeros(x.shape[0], F)
    with np.errstate(all="ignore"):
        for i in range(n):
            diff = (((scale * L[:, i].astype(F)).astype(F) + mn).astype(F) - x[:, i]).astype(F)
            diff = (diff * diff).astype(F)
            best = (best + (w[:, i] * diff).astype(F)).astype(F)
        for s in range(nstep + 1):
            # ggml updates min inside this loop: later steps use the new one.
            isc = safe_div(((F(rmin) + (F(rdelta) * F(s)).astype(F)).astype(F) + F(nmax)).astype(F),
                           (mx - mn).astype(F))
            La = np.clip(nearest_int((isc[:, None] * (x - mn[:, None]).astype(F)).astype(F)), 0, nmax)
            Lf = La.astype(F)
            sl = np.zeros(x.shape[0], F)
            sl2 = np.zeros(x.shape[0], F)
            sxl = np.zeros(x.shape[0], F)
            for i in range(n):
                wl = (w[:, i] * Lf[:, i]).astype(F)
                sl = (sl + wl).astype(F)
                sl2 = (sl2 + (wl * Lf[:, i]).astype(F)).astype(F)
                sxl = (sxl + (wl * x[:, i]).astype(F)).astype(F)
            D = ((sum_w * sl2).astype(F) - (sl * sl).astype(F)).astype(F)
            ts = safe_div(((sum_w * sxl).astype(F) - (sum_x * sl).astype(F)).astype(F), D)
            tm = safe_div(((sl2 * sum_x).astype(F) - (sl * sxl).astype(F)).astype(F), D)
            pos = tm > 0
            tm = np.where(pos, F(0), tm).astype(F)
            ts = np.where(pos, safe_div(sxl, sl2), ts).astype(F)
            cur = np.zeros(x.shape[0], F)
            for i in range(n):
                diff = (((ts * Lf[:, i]).astype(F) + tm).astype(F) - x[:, i]).astype(F)
                diff = (diff * diff).astype(F)
                cur = (cur + (w[:, i] * diff).astype(F)).astype(F)
            upd = (D > 0) & (cur < best)
            L = np.where(upd[:, None], La, L)
            best = np.where(upd, cur, best)
            scale = np.where(upd, ts, scale).astype(F)
            mn = np.where(upd, tm, mn).astype(F)
    L = np.where(flat[:, None], 0, L)
    scale = np.where(flat, F(0), scale).astype(F)
    return scale, (-mn).astype(F), L


def scale_min_k4(j, s):
    if j < 4:
        return s[:, j] & 63, s[:, j + 4] & 63
    return (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4), (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)


def kx(x, nmax, rmin, nstep):
    """Q4_K / Q5_K: (d bits, dmin bits, 12 scale bytes, L) per super-block."""
    b = x.reshape(-1, 8, 32)
    nb = b.shape[0]
    sub = b.reshape(-1, 32)
    sx2 = np.zeros(sub.shape[0], F)
    for l in range(32):
        sx2 = (sx2 + (sub[:, l] * sub[:, l]).astype(F)).astype(F)
    av = np.sqrt(safe_div(sx2, F(32))).astype(F)
    w = (av[:, None] + np.abs(sub)).astype(F)
    sc, mins, L = make_qkx2(sub, w, nmax, rmin, 0.1, nstep)
    sc = sc.reshape(nb, 8)
    mins = mins.reshape(nb, 8)
    L = L.reshape(nb, 256)
    max_scale = np.zeros(nb, F)
    max_min = np.zeros(nb, F)
    for j in range(8):
        max_scale = np.where(sc[:, j] > max_scale, sc[:, j], max_scale)
        max_min = np.where(mins[:, j] > max_min, mins[:, j], max_min)
    inv_s = np.where(max_scale > 0, safe_div(F(63), max_scale), F(0)).astype(F)
    inv_m = np.where(max_min > 0, safe_div(F(63), max_min), F(0)).astype(F)
    s = np.zeros((nb, 12), np.int64)
    for j in range(8):
        ls = np.minimum(63, nearest_int((inv_s * sc[:, j]).astype(F)) & 0xFF)
        lm = np.minimum(63, nearest_int((inv_m * mins[:, j]).astype(F)) & 0xFF)
        if j < 4:
            s[:, j] = ls
            s[:, j + 4] = lm
        else:
            s[:, j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            s[:, j - 4] |= (ls >> 4) << 6
            s[:, j] |= (lm >> 4) << 6
    d = f16_bits(safe_div(max_scale, F(63)))
    dmin = f16_bits(safe_div(max_min, F(63)))
    dv, mv = f16_val(d), f16_val(dmin)
    for j in range(8):
        scj, mj = scale_min_k4(j, s)
        dd = (dv * scj.astype(F)).astype(F)
        dm = (mv * mj.astype(F)).astype(F)
        xs = b[:, j, :]
        l = np.clip(nearest_int(safe_div((xs + dm[:, None]).astype(F), dd[:, None])), 0, nmax)
        keep = dd == 0
        L[:, 32 * j:32 * j + 32] = np.where(keep[:, None], L[:, 32 * j:32 * j + 32], l)
    return d, dmin, s.astype(np.uint8), L


def q4_k(x):
    d, dmin, s, L = kx(x, 15, -1.0, 20)
    nb = L.shape[0]
    out = np.zeros((nb, 144), np.uint8)
    out[:, 0:2] = d.view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dmin.view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = s
    qs = np.zeros((nb, 128), np.int64)
    for c in range(4):
        qs[:, 32 * c:32 * c + 32] = L[:, 64 * c:64 * c + 32] | (L[:, 64 * c + 32:64 * c + 64] << 4)
    out[:, 16:] = qs.astype(np.uint8)
    return out.tobytes()


def q5_k(x):
    d, dmin, s, L = kx(x, 31, -0.5, 15)
    nb = L.shape[0]
    out = np.zeros((nb, 176), np.uint8)
    out[:, 0:2] = d.view(np.uint8).reshape(-1, 2)
    out[:, 2:4] = dmin.view(np.uint8).reshape(-1, 2)
    out[:, 4:16] = s
    qh = np.zeros((nb, 32), np.int64)
    qs = np.zeros((nb, 128), np.int64)
    for c in range(4):
        lo = L[:, 64 * c:64 * c + 32]
        hi = L[:, 64 * c + 32:64 * c + 64]
        qh |= ((lo >> 4) & 1) << (2 * c)
        qh |= ((hi >> 4) & 1) << (2 * c + 1)
        qs[:, 32 * c:32 * c + 32] = (lo & 15) | ((hi & 15) << 4)
    out[:, 16:48] = qh.astype(np.uint8)
    out[:, 48:] = qs.astype(np.uint8)
    return out.tobytes()


def make_qx(x, nmax):
    """Per row: (scale, L offset by nmax) as make_qx_quants(rmse_type=1, no weights)."""
    n = x.shape[1]
    amax, mx = np.zeros(x.shape[0], F), np.zeros(x.shape[0], F)
    for i in range(n):
        a = np.abs(x[:, i])
        upd = a > amax
        amax = np.where(upd, a, amax)
        mx = np.where(upd, x[:, i], mx)
    zero = amax < F(1e-15)
    w = (x * x).astype(F)

    def sums(isc):
        l = np.clip(nearest_int((isc[:, None] * x).astype(F)), -nmax, nmax - 1)
        lf = l.astype(F)
        slx = np.zeros(x.shape[0], F)
        sl2 = np.zeros(x.shape[0], F)
        for i in range(n):
            slx = (slx + ((w[:, i] * x[:, i]).astype(F) * lf[:, i]).astype(F)).astype(F)
            sl2 = (sl2 + ((w[:, i] * lf[:, i]).astype(F) * lf[:, i]).astype(F)).astype(F)
        return l, slx, sl2

    with np.errstate(all="ignore"):
        iscale = safe_div(F(-nmax), mx)
        l, slx, sl2 = sums(iscale)
        L = l + nmax
        scale = np.where(sl2 != 0, safe_div(slx, sl2), F(0)).astype(F)
        best = (scale * slx).astype(F)
        for s in range(-9, 10):
            if s == 0:
                continue
            isc = safe_div(-(F(nmax) + (F(0.1) * F(s)).astype(F)).astype(F), mx)
            l, slx, sl2 = sums(isc)
            upd = (sl2 > 0) & ((slx * slx).astype(F) > (best * sl2).astype(F))
            L = np.where(upd[:, None], l + nmax, L)
            scale = np.where(upd, safe_div(slx, sl2), scale).astype(F)
            best = np.where(upd, (scale * slx).astype(F), best).astype(F)
    L = np.where(zero[:, None], 0, L)
    scale = np.where(zero, F(0), scale).astype(F)
    return scale, L


def q6_k(x):
    b = x.reshape(-1, 16, 16)
    nb = b.shape[0]
    sc, L = make_qx(b.reshape(-1, 16), 32)
    sc = sc.reshape(nb, 16)
    L = L.reshape(nb, 256)
    max_abs = np.zeros(nb, F)
    max_sc = np.zeros(nb, F)
    for ib in range(16):
        a = np.abs(sc[:, ib])
        upd = a > max_abs
        max_abs = np.where(upd, a, max_abs)
        max_sc = np.where(upd, sc[:, ib], max_sc)
    zero = max_abs < F(1e-15)
    with np.errstate(all="ignore"):
        iscale = safe_div(F(-128), max_sc)
        d = f16_bits(safe_div(F(1), iscale))
        scales = (np.minimum(127, nearest_int((iscale[:, None] * sc).astype(F))) & 0xFF).astype(np.uint8).view(np.int8)
        dv = f16_val(d)
        for j in range(16):
            dd = (dv * scales[:, j].astype(F)).astype(F)
            xs = b[:, j, :]
            l = np.clip(nearest_int(safe_div(xs, dd[:, None])), -32, 31) + 32
            L[:, 16 * j:16 * j + 16] = np.where((dd == 0)[:, None], L[:, 16 * j:16 * j + 16], l)
    out = np.zeros((nb, 210), np.uint8)
    ql = np.zeros((nb, 128), np.int64)
    qh = np.zeros((nb, 64), np.int64)
    for h in range(2):
        Lh = L[:, 128 * h:128 * h + 128]
        for k in range(4):
            part = Lh[:, 32 * k:32 * k + 32]
            col = 64 * h + (k & 1) * 32
            ql[:, col:col + 32] |= (part & 0xF) << (4 * (k >> 1))
            qh[:, 32 * h:32 * h + 32] |= (part >> 4) << (2 * k)
    out[:, 0:128] = ql.astype(np.uint8)
    out[:, 128:192] = qh.astype(np.uint8)
    out[:, 192:208] = scales.view(np.uint8)
    out[:, 208:210] = d.view(np.uint8).reshape(-1, 2)
    out[zero] = 0
    return out.tobytes()


QUANTIZERS = {"q8_0": q8_0, "q4_0": q4_0, "q4_1": q4_1, "q5_0": q5_0, "q5_1": q5_1,
              "q4_k": q4_k, "q5_k": q5_k, "q6_k": q6_k}


def quantize(qtype, x):
    return QUANTIZERS[qtype](np.ascontiguousarray(x, dtype=F).reshape(-1))


def edge_cases():
    """Rows of 512: normal values at several scales, all-zero blocks, one huge
    value in a block of small ones, subnormal-scale blocks, constant blocks,
    a block of one value, negatives only, exact halves."""
    rng = np.random.default_rng(17)
    rows = []
    for std in (1.0, 0.02, 30.0):
        rows.append(rng.normal(0, std, 512))
    rows.append(np.zeros(512))
    r = rng.normal(0, 0.01, 512)
    r[3] = 3.0e4
    r[300] = -1.0e30
    rows.append(r)
    rows.append(rng.normal(0, 1e-6, 512))            # scales underflow to f16 subnormals
    rows.append(rng.normal(0, 1e-9, 512))            # and to zero
    r = np.full(512, 0.25)
    r[256:] = -3.0
    rows.append(r)                                   # constant blocks
    r = np.zeros(512)
    r[::37] = 1.0
    rows.append(r)                                   # sparse single values
    rows.append(-np.abs(rng.normal(0, 1, 512)))      # negatives only
    rows.append(np.abs(rng.normal(0, 1, 512)) + 5)   # positive offset (mins)
    rows.append(np.round(rng.normal(0, 4, 512)) / 2)  # exact halves
    r = rng.normal(0, 1, 512)
    r[:32] = 0
    r[256:288] = 0
    rows.append(r)                                   # zero sub-blocks in a live block
    return np.array(rows, dtype=F)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--cases":
        out = sys.argv[2]
        os.makedirs(out, exist_ok=True)
        x = edge_cases()
        x.tofile(os.path.join(out, "input.f32"))
        for t in QUANTIZERS:
            with open(os.path.join(out, t + ".bin"), "wb") as f:
                f.write(quantize(t, x))
        return
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    qtype, inp, row, outp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    x = np.fromfile(inp, dtype=F).reshape(-1, row)
    with open(outp, "wb") as f:
        f.write(quantize(qtype, x))


if __name__ == "__main__":
    main()
