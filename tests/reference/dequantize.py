"""Independent numpy dequantization of GGUF tensor types.

Written from the block layouts of ggml's formats (docs and the published
block structs): for each type, the bytes of one block and how a value is
reconstructed. Everything is vectorised over blocks; the result is float32,
exactly the values a reader of the file should see.

  q8_0  34 bytes / 32 values: f16 d, int8 q[32];              x = d*q
  q4_0  18 bytes / 32: f16 d, u8 qs[16];  x[j] = d*(lo(qs[j]) - 8), x[j+16] = d*(hi(qs[j]) - 8)
  q4_1  20 bytes / 32: f16 d, f16 m, qs[16];  x = d*nibble + m (same nibble order)
  q4_K 144 bytes / 256: f16 d, f16 dmin, u8 scales[12] (8 six-bit scales and
        mins), u8 qs[128]; eight sub-blocks of 32: x = d*sc*q - dmin*m
  q5_K 176 bytes / 256: as q4_K plus u8 qh[32] giving each value a fifth bit
  q6_K 210 bytes / 256: u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits),
        int8 scales[16] (one per 16 values), f16 d;  x = d*scale*(q - 32)
"""

from __future__ import annotations

import numpy as np


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    return blocks[:, start:start + 2].copy().view(np.float16).astype(np.float32)


def _blocks(raw: np.ndarray, block_bytes: int) -> np.ndarray:
    return raw.reshape(-1, block_bytes)


def _split_nibbles(qs: np.ndarray) -> np.ndarray:
    """[n, 16] bytes -> [n, 32] values: low nibbles first, then high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)


def dequantize_q8_0(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 34)
    return (_f16(b, 0) * b[:, 2:].view(np.int8).astype(np.float32)).reshape(-1)


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 18)
    return (_f16(b, 0) * (_split_nibbles(b[:, 2:]) - 8.0)).reshape(-1)


def dequantize_q4_1(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 20)
    return (_f16(b, 0) * _split_nibbles(b[:, 4:]) + _f16(b, 2)).reshape(-1)


def _k_scales_mins(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 12 packed bytes of q4_K/q5_K -> eight 6-bit scales and mins per block.

    Sub-blocks 0-3: scale = low 6 bits of byte j, min = low 6 bits of byte j+4.
    Sub-blocks 4-7: the low 4 bits come from byte j+4 (scale: low nibble,
    min: high nibble) and the top 2 bits from the top bits of bytes j-4 (scale)
    and j (min).
    """
    s = scales.astype(np.int32)
    sc = np.empty((s.shape[0], 8), dtype=np.int32)
    mn = np.empty((s.shape[0], 8), dtype=np.int32)
    for j in range(4):
        sc[:, j] = s[:, j] & 63
        mn[:, j] = s[:, j + 4] & 63
    for j in range(4, 8):
        sc[:, j] = (s[:, j + 4] & 0x0F) | ((s[:, j - 4] >> 6) << 4)
        mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc.astype(np.float32), mn.astype(np.float32)


def dequantize_q4_k(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 144)
    d, dmin = _f16(b, 0), _f16(b, 2)
    sc, mn = _k_scales_mins(b[:, 4:16])
    qs = b[:, 16:144].reshape(-1, 4, 32)  # four chunks of 32 bytes = 64 values each
    q = np.empty((b.shape[0], 8, 32), dtype=np.float32)
    q[:, 0::2, :] = qs & 0x0F  # sub-block 2c: low nibbles of chunk c
    q[:, 1::2, :] = qs >> 4    # sub-block 2c+1: high nibbles of chunk c
    x = d[:, :, None] * sc[:, :, None] * q - dmin[:, :, None] * mn[:, :, None]
    return x.reshape(-1)


def dequantize_q5_k(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 176)
    d, dmin = _f16(b, 0), _f16(b, 2)
    sc, mn = _k_scales_mins(b[:, 4:16])
    qh = b[:, 16:48]  # bit k of qh[l] is the fifth bit of value l of sub-block k
    qs = b[:, 48:176].reshape(-1, 4, 32)
    q = np.empty((b.shape[0], 8, 32), dtype=np.float32)
    q[:, 0::2, :] = qs & 0x0F
    q[:, 1::2, :] = qs >> 4
    for k in range(8):
        q[:, k, :] += ((qh >> k) & 1).astype(np.float32) * 16.0
    x = d[:, :, None] * sc[:, :, None] * q - dmin[:, :, None] * mn[:, :, None]
    return x.reshape(-1)


def dequantize_q6_k(raw: np.ndarray) -> np.ndarray:
    b = _blocks(raw, 210)
    ql = b[:, 0:128].astype(np.int32)
    qh = b[:, 128:192].astype(np.int32)
    scales = b[:, 192:208].view(np.int8).astype(np.float32)
    d = _f16(b, 208)
    out = np.empty((b.shape[0], 256), dtype=np.float32)
    for half in range(2):  # each half: 128 values from 64 ql bytes and 32 qh bytes
        l_lo = ql[:, 64 * half:64 * half + 32]
        l_hi = ql[:, 64 * half + 32:64 * half + 64]
        h = qh[:, 32 * half:32 * half + 32]
        quarters = [
            (l_lo & 0x0F) | (((h >> 0) & 3) << 4),
            (l_hi & 0x0F) | (((h >> 2) & 3) << 4),
            (l_lo >> 4) | (((h >> 4) & 3) << 4),
            (l_hi >> 4) | (((h >> 6) & 3) << 4),
        ]
        for k, q in enumerate(quarters):
            # values 32k..32k+31 of the half use scales 8*half + 2k and 2k+1 (16 values each)
            scale = np.repeat(scales[:, 8 * half + 2 * k:8 * half + 2 * k + 2], 16, axis=1)
            start = 128 * half + 32 * k
            out[:, start:start + 32] = d * scale * (q.astype(np.float32) - 32.0)
    return out.reshape(-1)


def dequantize(type_name: str, raw: np.ndarray) -> np.ndarray:
    if type_name == "f32":
        return raw.copy().view(np.float32)
    if type_name == "f16":
        return raw.copy().view(np.float16).astype(np.float32)
    if type_name == "bf16":
        return (raw.copy().view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    decoders = {
        "q8_0": dequantize_q8_0, "q4_0": dequantize_q4_0, "q4_1": dequantize_q4_1,
        "q4_k": dequantize_q4_k, "q5_k": dequantize_q5_k, "q6_k": dequantize_q6_k,
    }
    if type_name not in decoders:
        raise ValueError(f"no dequantizer for {type_name}")
    return decoders[type_name](raw)
