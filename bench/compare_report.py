"""Table of bench/compare.sh results: per test, each engine's best tokens per
second over the rounds, the spread of its runs (min-max) and the ratio of the
bests (kvforge / llama.cpp). Prompt tests also give each engine's best as a
share of the machine's peak for the matmuls: 2 operations per weight of the
layers' matrices per token (the output projection runs for the last token
only), against the int8 dot-product peak for quantized weights and the f32
FMA peak for float weights (kvforge_machine_limits).

usage: compare_report.py DIR   (the directory compare.sh wrote)
"""
import glob
import json
import os
import sys
from collections import defaultdict


def kvforge_runs(path, cache, meta):
    """(test name, tokens/s) of one `kvforge bench -o json` file."""
    with open(path) as f:
        r = json.load(f)
    meta["prompt_params"] = r["matmul_params_per_token"] - r.get("output_matmul_params", 0)
    for t in r["tests"]:
        if t["test"].startswith("pp"):
            name = f"pp{t['n_tokens']}"
        else:
            name = f"tg{t['n_tokens']} @ d{t['depth']} KV {cache}"
        for s in t["samples"]:
            yield name, s, r.get("simd_target", "?")


def llama_runs(path, cache, meta):
    """(test name, tokens/s) of one `llama-bench -o json` file."""
    with open(path) as f:
        runs = json.load(f)
    for t in runs:
        # "llama 1B Q4_K - Small": the file type after the size.
        words = t["model_type"].split()
        meta["weight_type"] = " ".join(words[2:]) if len(words) > 2 else t["model_type"]
        if t["n_prompt"] > 0:
            name = f"pp{t['n_prompt']}"
        else:
            name = f"tg{t['n_gen']} @ d{t['n_depth']} KV {cache}"
        for s in t["samples_ts"]:
            yield name, s, t.get("build_commit", "?")


def cache_of(path):
    base = os.path.basename(path)
    return "int4" if "-int4-" in base else "f16"


def main() -> None:
    out = sys.argv[1]
    samples = defaultdict(lambda: defaultdict(list))  # test -> engine -> [tok/s]
    order = []
    info = {}
    meta = {}
    for path in sorted(glob.glob(os.path.join(out, "kvforge-*.json"))):
        for name, s, target in kvforge_runs(path, cache_of(path), meta):
            samples[name]["kvforge"].append(s)
            info["kvforge SIMD target"] = target
            if name not in order:
                order.append(name)
    for path in sorted(glob.glob(os.path.join(out, "llama-*.json"))):
        for name, s, commit in llama_runs(path, cache_of(path), meta):
            samples[name]["llama.cpp"].append(s)
            info["llama.cpp build"] = commit
            if name not in order:
                order.append(name)
    with open(os.path.join(out, "limits.json")) as f:
        limits = json.load(f)
    print(f"limits ({limits['threads']} threads): read {limits['read_gb_per_s']:.1f} GB/s, "
          f"f32 FMA {limits['fma_gflop_per_s']:.0f} GFLOP/s ({limits.get('fma_isa', '?')}), "
          f"int8 dot {limits.get('int8_gop_per_s', 0):.0f} GOP/s ({limits.get('int8_isa', '?')})")
    print("; ".join(f"{k}: {v}" for k, v in info.items()))
    print()
    quantized = meta.get("weight_type", "F16").upper() not in ("F32", "F16", "BF16")
    peak = 1e9 * (limits.get("int8_gop_per_s", 0) if quantized else limits["fma_gflop_per_s"])
    peak_name = "int8 dot-product" if quantized else "f32 FMA"
    print(f"weights {meta.get('weight_type', '?')}: prompt processing as a share of the "
          f"{peak_name} peak ({2 * meta.get('prompt_params', 0) / 1e9:.2f} GOP per token)")
    print()
    print("| test | kvforge t/s (best, min-max) | llama.cpp t/s (best, min-max) | ratio "
          "| % of peak (kvforge / llama.cpp) |")
    print("| --- | ---: | ---: | ---: | ---: |")

    def cell(v):
        if not v:
            return "-"
        return f"{max(v):.2f} ({min(v):.2f}-{max(v):.2f}, n={len(v)})"

    for name in order:
        k = samples[name]["kvforge"]
        l = samples[name]["llama.cpp"]
        ratio = f"{max(k) / max(l):.2f}" if k and l else "-"
        share = "-"
        if name.startswith("pp") and peak > 0 and meta.get("prompt_params"):
            ops = 2 * meta["prompt_params"]
            share = " / ".join(f"{100 * max(v) * ops / peak:.0f}%" if v else "-" for v in (k, l))
        print(f"| {name} | {cell(k)} | {cell(l)} | {ratio} | {share} |")


if __name__ == "__main__":
    main()
