#!/usr/bin/python3
"""Validates the reference implementation on a real trained model.

Runs reference.py's forward pass on models/stories260K.gguf (made by
`kvforge convert llama2c`) and compares with the expected outputs shipped
beside the original checkpoint (reference_outputs.json, computed by a
different implementation straight from the llama2.c file): the 64 greedy
tokens from BOS must be identical and the mean negative log-likelihood of the
first validation story must agree within 1e-5. Passing checks both the
reference and the converter (no RoPE permutation needed for llama2.c).

Usage: check_reference.py MODEL.gguf REFERENCE_OUTPUTS.json
"""

from __future__ import annotations

import json
import sys

import torch

from reference import Model


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    torch.set_num_threads(2)
    model = Model(sys.argv[1])
    with open(sys.argv[2]) as f:
        expected = json.load(f)

    greedy = expected["greedy_from_bos"]
    ids, margin = model.greedy(greedy["prompt_tokens"], greedy["steps"])
    greedy_ok = ids == greedy["generated_ids"]
    print(f"greedy from BOS: {'identical' if greedy_ok else 'DIFFERENT'} "
          f"({len(ids)} tokens, smallest top-2 logit gap {margin:.4f})")

    story = expected["nll_first_story"]
    tokens = story["input_ids"]
    logits = model.logits(tokens)
    log_probs = torch.log_softmax(logits[:-1], dim=-1)
    nll = -log_probs[torch.arange(len(tokens) - 1), torch.tensor(tokens[1:])]
    mean_nll = float(nll.mean())
    diff = abs(mean_nll - story["mean_nll"])
    nll_ok = diff <= 1e-5
    print(f"mean NLL of the first story: {mean_nll:.8f} (expected {story['mean_nll']:.8f}, "
          f"difference {diff:.2e}) {'ok' if nll_ok else 'TOO FAR'}")
    return 0 if greedy_ok and nll_ok else 1


if __name__ == "__main__":
    sys.exit(main())
