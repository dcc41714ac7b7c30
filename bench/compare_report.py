"""Table of bench/compare.sh results: per test, each engine's best tokens per
second over the rounds, the spread of its runs (min-max) and the ratio of the
bests (kvforge / llama.cpp).

usage: compare_report.py DIR   (the directory compare.sh wrote)
"""
import glob
import json
import os
import sys
from collections import defaultdict


def kvforge_runs(path, cache):
    """(test name, tokens/s) of one `kvforge bench -o json` file."""
    with open(path) as f:
        r = json.load(f)
    for t in r["tests"]:
        if t["test"].startswith("pp"):
            name = f"pp{t['n_tokens']}"
        else:
            name = f"tg{t['n_tokens']} @ d{t['depth']} KV {cache}"
        for s in t["samples"]:
            yield name, s, r.get("simd_target", "?")


def llama_runs(path, cache):
    """(test name, tokens/s) of one `llama-bench -o json` file."""
    with open(path) as f:
        runs = json.load(f)
    for t in runs:
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
    for path in sorted(glob.glob(os.path.join(out, "kvforge-*.json"))):
        for name, s, target in kvforge_runs(path, cache_of(path)):
            samples[name]["kvforge"].append(s)
            info["kvforge SIMD target"] = target
            if name not in order:
                order.append(name)
    for path in sorted(glob.glob(os.path.join(out, "llama-*.json"))):
        for name, s, commit in llama_runs(path, cache_of(path)):
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
    print("| test | kvforge t/s (best, min-max) | llama.cpp t/s (best, min-max) | ratio |")
    print("| --- | ---: | ---: | ---: |")

    def cell(v):
        if not v:
            return "-"
        return f"{max(v):.2f} ({min(v):.2f}-{max(v):.2f}, n={len(v)})"

    for name in order:
        k = samples[name]["kvforge"]
        l = samples[name]["llama.cpp"]
        ratio = f"{max(k) / max(l):.2f}" if k and l else "-"
        print(f"| {name} | {cell(k)} | {cell(l)} | {ratio} |")


if __name__ == "__main__":
    main()
