"""Turns `kvforge bench -o json` results and measured machine limits into a
Markdown table: each speed next to the limit the hardware allows.

usage: speed_report.py LIMITS_JSON RESULT.json [RESULT.json ...]
"""
import json
import sys


def main() -> None:
    limits = json.loads(sys.argv[1])
    bandwidth = limits["read_gb_per_s"] * 1e9
    fma = limits["fma_gflop_per_s"] * 1e9
    print(f"threads {limits['threads']}: read bandwidth {limits['read_gb_per_s']:.1f} GB/s, "
          f"FMA peak {limits['fma_gflop_per_s']:.0f} GFLOP/s\n")
    print("| model | test | t/s | limit t/s | % of limit | bound | roofline t/s | % of roofline |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for path in sys.argv[2:]:
        with open(path) as f:
            r = json.load(f)
        name = r["model"].rsplit("/", 1)[-1].removesuffix(".gguf")
        name += f" (KV {r.get('kv_codec', 'f16')})"
        weight_bytes = r["weight_bytes_per_token"]
        kv_per_token = r["kv_bytes_per_token"]
        # Matmul FLOPs per token: 2 per weight parameter of the matrices a
        # token passes through (the embedding lookup is not a matmul).
        matmul_flops = 2 * r["matmul_params_per_token"]
        attention_flops = r.get("attention_flops_per_context_token", 0)
        for t in r["tests"]:
            tps = t["tokens_per_second_mean"]
            if t["test"].startswith("pp"):
                limit = roofline = fma / matmul_flops
                bound = "FMA (matmul share)"
            else:
                depth = t["depth"] + t["n_tokens"] / 2  # mean context while decoding
                limit = bandwidth / (weight_bytes + kv_per_token * depth)
                bound = "bandwidth (weights + KV)"
                # Roofline: the weights stream at bandwidth; the attention
                # takes the longer of reading its KV bytes and doing its
                # f32 arithmetic at the FMA peak.
                kv_seconds = max(kv_per_token * depth / bandwidth,
                                 attention_flops * depth / fma if fma else 0)
                roofline = 1 / (weight_bytes / bandwidth + kv_seconds)
            print(f"| {name} | {t['test']} | {tps:.2f} ± {t['tokens_per_second_stddev']:.2f} "
                  f"| {limit:.2f} | {100 * tps / limit:.0f}% | {bound} "
                  f"| {roofline:.2f} | {100 * tps / roofline:.0f}% |")


if __name__ == "__main__":
    main()
