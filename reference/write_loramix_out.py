#!/usr/bin/env python3
"""Write loramix's merges of selected golden cases for reference/peft_merge.py check.

    python3 reference/write_loramix_out.py [--bin bin/loramix] [--testdata engine/merge/testdata]

For each case id below, runs `loramix merge` with the case's adapters and
arguments and writes <testdata>/loramix_out/<id>/ (a PEFT adapter directory).
The GPU machine then loads each with PeftModel.from_pretrained and compares
its updates with PEFT's own merge of the same case (peft_merge.py check).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

IDS = [
    # every deterministic type, overlapping targets, rsLoRA on the second adapter, a negative weight
    "ac-cat-1_-0.5-density0.3", "ac-linear-1_-0.5-density0.3", "ac-svd-1_-0.5-density0.3",
    "ac-ties-1_-0.5-density0.3", "ac-ties_svd-1_-0.5-density0.3", "ac-magnitude_prune-1_-0.5-density0.3",
    "ac-magnitude_prune_svd-1_-0.5-density0.3",
    # rsLoRA first (PEFT 0.21 keeps use_rslora), unequal ranks, three adapters
    "ca-cat-1_1-density0.5", "ca-svd-1_-0.5-density0.5", "ca-linear-1_-0.5-density0.5",
    "ab-svd-0.2_1-density0.6", "ab-cat-1_0.05-density0.6", "abc-svd-0.5_-1_1-density0.6",
    "adc-ties-0.5_-1_1-density0.6-signfrequency", "ad-svd-0.5_1-svd_rank4", "single-svd-0.7",
    # DARE: loads and config only (torch's masks differ)
    "ad-dare_ties-0.5_1-density0.5", "ad-dare_linear_svd-1_1-density0.5",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin/loramix")
    ap.add_argument("--testdata", default="engine/merge/testdata")
    args = ap.parse_args()
    cases = {c["id"]: c for c in json.load(open(os.path.join(args.testdata, "cases.json")))["cases"]}
    root = os.path.join(args.testdata, "loramix_out")
    shutil.rmtree(root, ignore_errors=True)
    for cid in IDS:
        c = cases[cid]
        cmd = [args.bin, "merge", "--method", c["combination_type"], "--out", os.path.join(root, cid),
               "--weights", ",".join(repr(float(w)) for w in c["weights"]), "--seed", "1",
               "--majority-sign", c["majority_sign_method"]]
        for a in c["adapters"]:
            cmd += ["--adapter", f"{a}={os.path.join(args.testdata, 'inputs', a)}"]
        if c["svd_rank"]:
            cmd += ["--svd-rank", str(c["svd_rank"])]
        if c["svd_clamp"] is not None:
            cmd += ["--svd-clamp", repr(c["svd_clamp"])]
        if c["density"] is not None:
            cmd += ["--density", repr(c["density"])]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(cid, "FAILED:", out.stderr.strip())
            return 1
        print(cid, "|", out.stdout.strip().splitlines()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
