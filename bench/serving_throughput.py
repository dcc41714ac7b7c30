#!/usr/bin/env python3
"""Aggregate decode throughput of an OpenAI-compatible server at several
concurrency levels (docs/serving.md).

For each N, N clients each send one non-streaming /v1/completions request
at the same moment (distinct prompts, fixed max_tokens, greedy) and the
script reports completion tokens per second over the wall time of the round,
with the mean and worst request latency. The same client drives kvforge
serve and llama.cpp's llama-server, so the two are measured alike.

  bench/serving_throughput.py --url http://127.0.0.1:8080 --concurrency 1,4,16,64 \
      --max-tokens 64 [--label kvforge]
"""
import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request

WORDS = ("the cat sat on a warm mat while a small dog ran across the quiet "
         "garden and birds sang in the old tree near the river").split()


def prompt_for(i: int, n_words: int) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n_words))


def one_request(url: str, body: dict, out: list, slot: int) -> None:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url + "/v1/completions", data=data,
                                 headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=3600) as resp:
            reply = json.loads(resp.read())
        tokens = reply.get("usage", {}).get("completion_tokens", 0)
        out[slot] = (time.monotonic() - t0, tokens, None)
    except (urllib.error.URLError, OSError, ValueError) as e:
        out[slot] = (time.monotonic() - t0, 0, str(e))


def round_of(url: str, n: int, max_tokens: int, prompt_words: int, model: str) -> dict:
    results = [None] * n
    threads = []
    for i in range(n):
        body = {"model": model, "prompt": prompt_for(i, prompt_words), "max_tokens": max_tokens,
                "temperature": 0, "ignore_eos": True}
        threads.append(threading.Thread(target=one_request, args=(url, body, results, i)))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    errors = [r[2] for r in results if r[2]]
    if errors:
        raise SystemExit(f"error: {len(errors)} of {n} requests failed: {errors[0]}")
    tokens = sum(r[1] for r in results)
    latencies = [r[0] for r in results]
    return {"n": n, "tokens": tokens, "wall": wall, "tok_s": tokens / wall,
            "mean_latency": sum(latencies) / n, "max_latency": max(latencies)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=24)
    ap.add_argument("--model", default="", help="model name (default: the server's first)")
    ap.add_argument("--label", default="server")
    ap.add_argument("--warmup", type=int, default=1, help="rounds of one request first")
    args = ap.parse_args()
    try:
        levels = [int(x) for x in args.concurrency.split(",")]
    except ValueError:
        print(f"error: --concurrency must be a comma-separated list of integers, got "
              f"'{args.concurrency}'", file=sys.stderr)
        return 2
    if any(n < 1 for n in levels) or args.max_tokens < 1:
        print("error: concurrency levels and --max-tokens must be >= 1", file=sys.stderr)
        return 2
    if not args.model:
        try:
            with urllib.request.urlopen(args.url + "/v1/models", timeout=60) as resp:
                args.model = json.loads(resp.read())["data"][0]["id"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as e:
            print(f"error: cannot read the model's name from {args.url}/v1/models: {e}",
                  file=sys.stderr)
            return 2
    for _ in range(args.warmup):
        round_of(args.url, 1, 4, args.prompt_words, args.model)
    print(f"| {args.label}: concurrent requests | completion tokens | wall (s) | "
          f"aggregate tok/s | mean latency (s) | max latency (s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in levels:
        r = round_of(args.url, n, args.max_tokens, args.prompt_words, args.model)
        print(f"| {r['n']} | {r['tokens']} | {r['wall']:.2f} | {r['tok_s']:.1f} | "
              f"{r['mean_latency']:.2f} | {r['max_latency']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
