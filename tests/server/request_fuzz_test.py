#!/usr/bin/env python3
"""Seeded random requests against a live `kvforge serve` (docs/serving.md,
"Tests").

Each request starts from a valid completion or chat body and gets random
fields of random types and values (huge and negative numbers, NaN, long and
odd strings, nested arrays and objects, token ids out of range, press specs,
extension objects), some bodies are cut short or given invalid bytes, and
some clients hang up halfway through a (streamed) answer. Several clients
run at once. The server must answer every complete request with 200 or an
OpenAI-style 4xx error body, stay up, print no sanitizer report, and in the
end hold no sequence and no used KV block (cancelled requests freed).

usage: request_fuzz_test.py KVFORGE_BINARY MODEL.gguf [--requests N]
       [--clients C] [--seed S]
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

FIELDS = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature",
          "top_p", "n", "stream", "stream_options", "stop", "seed", "presence_penalty",
          "frequency_penalty", "user", "top_k", "min_p", "ignore_eos", "logprobs", "echo",
          "best_of", "suffix", "logit_bias", "tools", "response_format", "kvforge", "no_such_field"]
EXTENSION_KEYS = ["cache_salt", "press", "workflow", "agent", "next_use", "no_such_key"]
PRESSES = ["snapkv:ratio=0.5", "h2o:tokens=8", "streamingllm:tokens=4", "tova:ratio=0.3",
           "knorm:ratio=0.5", "pyramidkv:ratio=0.3", "bogus", "snapkv:ratio=-1", "tova:ratio=2",
           "knorm:ratio=0.5:x=1", ":", "snapkv:ratio=nan"]
STRINGS = ["", "a", "Once upon a time", "\u00e9\u4e2d\U0001F600", "\u0000", "x" * 5000,
           "<|eot_id|>", "</s>", "{{ bos_token }}", "stories260K"]
NUMBERS = [0, -1, 1, 2, 3, 7, 16, 255, 256, 511, 512, 1023, 2**31 - 1, 2**31, -2**31 - 1,
           2**53, 2**63, 2**64 + 5, -2**70, 0.0, -0.0, 0.5, 1.5, 2.5, -3.0, 1e308, -1e308,
           1e-320, 3.4e38, 1e39, float("nan"), float("inf")]
EXPECTED = {200, 400, 404, 413}


def random_value(rng, depth=0):
    kind = rng.randrange(12)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice(NUMBERS)
    if kind == 3:
        return rng.choice(STRINGS)
    if kind == 4 and depth < 4:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    if kind == 5 and depth < 4:
        keys = ["role", "content", "type", "text"] + EXTENSION_KEYS + ["include_usage"]
        return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randrange(5))}
    if kind == 6:
        return [rng.randrange(-5, 600) for _ in range(rng.randrange(40))]
    if kind == 7:
        return rng.choice(PRESSES)
    if kind == 8:
        roles = ["user", "system", "assistant", "tool", "bogus", 3]
        return [{"role": rng.choice(roles),
                 "content": random_value(rng, depth + 1) if rng.random() < 0.3 else "Hi"}
                for _ in range(rng.randrange(4))]
    if kind == 9:
        return rng.randrange(-3, 70)
    if kind == 10:
        return rng.random() * 3 - 0.5
    return "Tell me a story about a cat."


def random_body(rng, chat):
    body = {"messages": [{"role": "user", "content": "Once upon a time"}]} if chat else {
        "prompt": "Once upon a time"}
    body["max_tokens"] = rng.randrange(1, 48)
    if rng.random() < 0.4:
        body["stream"] = True
    for _ in range(rng.randrange(5)):
        body[rng.choice(FIELDS)] = random_value(rng)
    if rng.random() < 0.2:
        body["kvforge"] = {rng.choice(EXTENSION_KEYS): random_value(rng)
                           for _ in range(rng.randrange(1, 4))}
    if rng.random() < 0.1:
        body.pop(rng.choice(list(body)), None)
    data = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity are not JSON
    cut = rng.random()
    if cut < 0.04:
        return data[:rng.randrange(len(data) + 1)]
    if cut < 0.06:
        return data.replace(b":", b"", 1)
    if cut < 0.08:
        return b"\xff\xfe" + data
    if cut < 0.09:
        return b"[" * 5000
    if cut < 0.10:
        return b'{"prompt": "\xc3"}'
    return data


class Failures:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []
        self.statuses = {}

    def add(self, what):
        with self.lock:
            self.items.append(what)

    def count(self, status):
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


def check_error_body(raw):
    reply = json.loads(raw)
    error = reply["error"]
    if not isinstance(error.get("message"), str) or not error["message"]:
        raise ValueError("error without a message")
    if "param" not in error or "code" not in error:
        raise ValueError("error without param or code")


def client(port, seed, n_requests, failures):
    rng = random.Random(seed)
    for _ in range(n_requests):
        chat = rng.random() < 0.5
        path = "/v1/chat/completions" if chat else "/v1/completions"
        data = random_body(rng, chat)
        hang_up = rng.random() < 0.25
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            failures.count(resp.status)
            if resp.status not in EXPECTED:
                failures.add(f"status {resp.status} for {data[:200]!r}: {resp.read(300)!r}")
                continue
            if hang_up:  # a client that goes away mid-answer
                resp.read(rng.randrange(1, 200))
                continue
            raw = resp.read()
            if resp.status != 200:
                check_error_body(raw)
            elif raw.startswith(b"data: "):
                if not raw.rstrip().endswith(b"data: [DONE]"):
                    failures.add(f"stream not ended by [DONE] for {data[:200]!r}")
            else:
                reply = json.loads(raw)
                if "choices" not in reply or "usage" not in reply:
                    failures.add(f"200 without choices or usage for {data[:200]!r}: {raw[:300]!r}")
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as e:
            failures.add(f"{type(e).__name__}: {e} for {data[:200]!r}")
        finally:
            conn.close()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def metric(text, name):
    match = re.search("^" + re.escape(name) + r" (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kvforge")
    parser.add_argument("model")
    parser.add_argument("--requests", type=int, default=500, help="per client")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    failures = Failures()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "server.log")
        with open(log_path, "w") as log:
            server = subprocess.Popen(
                [args.kvforge, "serve", "-m", args.model, "--port", "0", "-t", "2", "--parallel",
                 "4"], stdout=log, stderr=subprocess.STDOUT)
        try:
            port = None
            for _ in range(600):
                with open(log_path) as f:
                    found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read())
                if found:
                    port = int(found.group(1))
                    break
                if server.poll() is not None:
                    break
                time.sleep(0.05)
            if port is None:
                print("FAIL: the server did not start:\n" + open(log_path).read())
                return 1

            threads = [threading.Thread(target=client,
                                        args=(port, args.seed * 1000 + i, args.requests, failures))
                       for i in range(args.clients)]
            started = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(f"{args.clients} x {args.requests} requests in "
                  f"{time.monotonic() - started:.1f} s, statuses {dict(sorted(failures.statuses.items()))}")

            # Hung-up requests are cancelled at the engine's next steps.
            running = used = None
            for _ in range(200):
                status, text = get(port, "/metrics")
                running = metric(text, "kvforge_requests_running")
                used = metric(text, 'kvforge_kv_blocks{state="used"}')
                if status == 200 and running == 0 and used == 0:
                    break
                time.sleep(0.05)
            if running != 0 or used != 0:
                failures.add(f"after the requests: {running} running, {used} used blocks")
            if get(port, "/health")[0] != 200:
                failures.add("/health did not answer 200")
            if failures.statuses.get(200, 0) == 0 or failures.statuses.get(400, 0) == 0:
                failures.add("the requests did not produce both answers and refusals")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                failures.add("the server did not stop on SIGTERM")
        log_text = open(log_path).read()
        for report in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            if report in log_text:
                failures.add(f"sanitizer report in the server log:\n{log_text[-4000:]}")
                break
        if server.returncode not in (0, -signal.SIGTERM):
            failures.add(f"the server exited with {server.returncode}")

    for item in failures.items[:20]:
        print("FAIL:", item)
    return 1 if failures.items else 0


if __name__ == "__main__":
    sys.exit(main())
