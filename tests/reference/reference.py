#!/usr/bin/python3
"""Independent reference forward pass for GGUF llama / qwen2 / qwen3 models.

Written from the architecture definitions (docs/models.md), with its own GGUF
reader (gguf_file.py) and dequantizers (dequantize.py). Weights are
dequantized to float32 exactly as stored and the whole computation runs in
torch float64, so the result is the model's exact function up to float64
rounding.

Per layer:  h = rmsnorm(x) * attn_norm
            q, k, v = Wq h (+bq), Wk h (+bk), Wv h (+bv)
            qwen3: q, k = rmsnorm_per_head(q) * q_norm, rmsnorm_per_head(k) * k_norm
            RoPE on q and k; causal softmax(q k^T / sqrt(head_dim)) v with GQA
            x += Wo attn;  h = rmsnorm(x) * ffn_norm;  x += Wdown(silu(Wgate h) * Wup h)
logits = Woutput (rmsnorm(x) * output_norm), Woutput = token_embd when absent.
RoPE: "llama" rotates pairs (2i, 2i+1), qwen2/qwen3 rotate (i, i + rope_dim/2);
angle = pos * freq_base^(-2i/rope_dim) / rope_freqs[i].

With --llama3-rope-scaling FACTOR,LOW,HIGH,ORIGINAL_CONTEXT the frequencies
come from Llama 3.1's scaling rule computed here (llama3_inverse_frequencies),
not from the file; the file's rope_freqs.weight must agree with them.

Usage: reference.py MODEL.gguf --prompt-ids 1,2,3 [--greedy 32] [--json OUT]
                    [--llama3-rope-scaling 8,1,4,8192]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

import numpy as np
import torch

from dequantize import dequantize
from gguf_file import GgufFile

NEOX_ARCHS = {"qwen2", "qwen3"}
N_LOGIT_SAMPLES = 255  # fixed vocabulary indices reported per position (plus the argmax)


@dataclass
class Hparams:
    arch: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    rope_dim: int
    n_vocab: int
    eps: float
    freq_base: float


@dataclass
class Llama3RopeScaling:
    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_context: float


def llama3_inverse_frequencies(inv_freq: torch.Tensor, s: Llama3RopeScaling) -> torch.Tensor:
    """Llama 3.1's RoPE frequency scaling, as Meta describes it with the model.

    With the original context length L, a rotary frequency f has wavelength
    w = 2 pi / f. Wavelengths shorter than L / high_freq_factor (high
    frequencies) are kept; longer than L / low_freq_factor (low frequencies)
    are divided by `factor`; in between the frequency is interpolated:
    s = (L / w - low) / (high - low), f' = (1 - s) f / factor + s f.
    """
    out = inv_freq.clone()
    short_limit = s.original_context / s.high_freq_factor
    long_limit = s.original_context / s.low_freq_factor
    for i, f in enumerate(inv_freq.tolist()):
        wavelength = 2 * math.pi / f
        if wavelength < short_limit:
            continue
        if wavelength > long_limit:
            out[i] = f / s.factor
        else:
            smooth = (s.original_context / wavelength - s.low_freq_factor) / (
                s.high_freq_factor - s.low_freq_factor)
            out[i] = (1 - smooth) * f / s.factor + smooth * f
    return out


class Model:
    def __init__(self, path: str, rope_scaling: Llama3RopeScaling | None = None):
        self.rope_scaling = rope_scaling
        self.file = GgufFile(path)
        m = self.file.metadata
        arch = m["general.architecture"]
        if arch not in ("llama", "qwen2", "qwen3"):
            raise ValueError(f"architecture {arch} not supported")
        n_embd = m[f"{arch}.embedding_length"]
        n_head = m[f"{arch}.attention.head_count"]
        head_dim = m.get(f"{arch}.attention.key_length", n_embd // n_head)
        embd = self.file.tensors["token_embd.weight"]
        self.hp = Hparams(
            arch=arch,
            n_embd=n_embd,
            n_layer=m[f"{arch}.block_count"],
            n_head=n_head,
            n_head_kv=m.get(f"{arch}.attention.head_count_kv", n_head),
            head_dim=head_dim,
            rope_dim=m.get(f"{arch}.rope.dimension_count", head_dim),
            n_vocab=embd.dims[1],
            eps=float(m[f"{arch}.attention.layer_norm_rms_epsilon"]),
            freq_base=float(m.get(f"{arch}.rope.freq_base", 10000.0)),
        )
        self.weights: dict[str, torch.Tensor] = {}
        for name, tensor in self.file.tensors.items():
            values = dequantize(tensor.type_name, tensor.data)
            shape = list(reversed(tensor.dims))  # row-major numpy shape (out, in)
            self.weights[name] = torch.from_numpy(values.reshape(shape).astype(np.float64))
        if "output.weight" not in self.weights:
            self.weights["output.weight"] = self.weights["token_embd.weight"]
        self.inv_freq = self._inverse_frequencies()

    def _inverse_frequencies(self) -> torch.Tensor:
        hp = self.hp
        i = torch.arange(hp.rope_dim // 2, dtype=torch.float64)
        inv_freq = hp.freq_base ** (-2.0 * i / hp.rope_dim)
        stored = self.weights.get("rope_freqs.weight")
        if self.rope_scaling is None:
            return inv_freq if stored is None else inv_freq / stored
        scaled = llama3_inverse_frequencies(inv_freq, self.rope_scaling)
        # The file's factors (f32) must be this rule's: f / f'.
        if stored is None:
            raise ValueError("--llama3-rope-scaling given, but the model has no rope_freqs.weight")
        worst = float(((inv_freq / scaled - stored) / stored).abs().max())
        if worst > 1e-6:
            raise ValueError(f"rope_freqs.weight differs from Llama 3.1 scaling by {worst:.3g} "
                             f"(relative): file {stored.tolist()}, rule {(inv_freq / scaled).tolist()}")
        return scaled

    def _rope(self, x: torch.Tensor) -> torch.Tensor:
        """x: [n_tokens, n_heads, head_dim], positions 0..n_tokens-1."""
        hp = self.hp
        pos = torch.arange(x.shape[0], dtype=torch.float64)
        angle = pos[:, None] * self.inv_freq[None, :]  # [n_tokens, rope_dim/2]
        cos, sin = torch.cos(angle)[:, None, :], torch.sin(angle)[:, None, :]
        out = x.clone()
        half = hp.rope_dim // 2
        if hp.arch in NEOX_ARCHS:
            a, b = x[..., :half], x[..., half:hp.rope_dim]
            out[..., :half] = a * cos - b * sin
            out[..., half:hp.rope_dim] = a * sin + b * cos
        else:
            a, b = x[..., 0:hp.rope_dim:2], x[..., 1:hp.rope_dim:2]
            out[..., 0:hp.rope_dim:2] = a * cos - b * sin
            out[..., 1:hp.rope_dim:2] = a * sin + b * cos
        return out

    def _rmsnorm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.hp.eps) * weight

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weights[f"{name}.weight"].T
        bias = self.weights.get(f"{name}.bias")
        return y if bias is None else y + bias

    def logits(self, tokens: list[int]) -> torch.Tensor:
        """[n_tokens, n_vocab] float64 logits for every position."""
        hp, w = self.hp, self.weights
        n = len(tokens)
        x = w["token_embd.weight"][torch.tensor(tokens)]
        mask = torch.full((n, n), -math.inf, dtype=torch.float64).triu(1)
        group = hp.n_head // hp.n_head_kv
        for i in range(hp.n_layer):
            p = f"blk.{i}."
            h = self._rmsnorm(x, w[p + "attn_norm.weight"])
            q = self._linear(p + "attn_q", h).view(n, hp.n_head, hp.head_dim)
            k = self._linear(p + "attn_k", h).view(n, hp.n_head_kv, hp.head_dim)
            v = self._linear(p + "attn_v", h).view(n, hp.n_head_kv, hp.head_dim)
            if p + "attn_q_norm.weight" in w:
                q = self._rmsnorm(q, w[p + "attn_q_norm.weight"])
                k = self._rmsnorm(k, w[p + "attn_k_norm.weight"])
            q, k = self._rope(q), self._rope(k)
            # Query head j reads KV head j // group.
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
            scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hp.head_dim) + mask
            attn = torch.einsum("hqk,khd->qhd", torch.softmax(scores, dim=-1), v)
            x = x + self._linear(p + "attn_output", attn.reshape(n, hp.n_head * hp.head_dim))
            h = self._rmsnorm(x, w[p + "ffn_norm.weight"])
            gate = torch.nn.functional.silu(self._linear(p + "ffn_gate", h))
            x = x + self._linear(p + "ffn_down", gate * self._linear(p + "ffn_up", h))
        return self._rmsnorm(x, w["output_norm.weight"]) @ w["output.weight"].T

    def greedy(self, prompt: list[int], steps: int) -> tuple[list[int], float]:
        """Greedy continuation and the smallest top-1 minus top-2 logit gap seen."""
        tokens = list(prompt)
        generated: list[int] = []
        min_margin = math.inf
        for _ in range(steps):
            last = self.logits(tokens)[-1]
            top2 = torch.topk(last, 2).values
            min_margin = min(min_margin, float(top2[0] - top2[1]))
            next_id = int(torch.argmax(last))
            generated.append(next_id)
            tokens.append(next_id)
        return generated, min_margin


def sample_indices(n_vocab: int, argmax: int) -> list[int]:
    fixed = np.linspace(0, n_vocab - 1, N_LOGIT_SAMPLES).round().astype(int).tolist()
    return sorted(set(fixed) | {argmax})


def describe_positions(logits: torch.Tensor) -> list[dict]:
    positions = []
    for row in logits:
        indices = sample_indices(row.shape[0], int(torch.argmax(row)))
        positions.append({
            "logsumexp": float(torch.logsumexp(row, dim=0)),
            "indices": indices,
            "logits": [float(row[i]) for i in indices],
        })
    return positions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--prompt-ids", required=True, help="comma-separated token ids")
    parser.add_argument("--greedy", type=int, default=32, help="greedy steps after the prompt")
    parser.add_argument("--json", help="write the result here instead of stdout")
    parser.add_argument("--llama3-rope-scaling", metavar="FACTOR,LOW,HIGH,ORIGINAL_CONTEXT",
                        help="compute RoPE frequencies with Llama 3.1 scaling")
    args = parser.parse_args()
    torch.set_num_threads(2)
    scaling = None
    if args.llama3_rope_scaling:
        values = [float(v) for v in args.llama3_rope_scaling.split(",")]
        if len(values) != 4:
            parser.error("--llama3-rope-scaling needs FACTOR,LOW,HIGH,ORIGINAL_CONTEXT")
        scaling = Llama3RopeScaling(*values)
    model = Model(args.model, scaling)
    prompt = [int(t) for t in args.prompt_ids.split(",")]
    if any(t < 0 or t >= model.hp.n_vocab for t in prompt):
        parser.error(f"prompt ids must be in [0, {model.hp.n_vocab})")
    greedy_ids, margin = model.greedy(prompt, args.greedy)
    result = {
        "prompt_ids": prompt,
        "positions": describe_positions(model.logits(prompt)),
        "greedy_ids": greedy_ids,
        "greedy_min_margin": margin,
    }
    if scaling is not None:
        result["llama3_rope_scaling"] = {
            "factor": scaling.factor, "low_freq_factor": scaling.low_freq_factor,
            "high_freq_factor": scaling.high_freq_factor,
            "original_context_length": scaling.original_context}
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
