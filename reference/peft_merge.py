#!/usr/bin/env python3
"""Goldens for loramix's adapter merging (engine/merge) from PEFT's add_weighted_adapter.

Run on the GPU machine (CPU torch is enough):

    python3 reference/peft_merge.py gen   --out engine/merge/testdata [--src OUT/peft_src.txt]
    python3 reference/peft_merge.py check --testdata engine/merge/testdata [--report OUT/check.json]

gen builds a small random Llama (seeded), four random LoRA adapters, saves them
under <out>/inputs/<name>/ with save_pretrained, and runs add_weighted_adapter
for every combination type over a grid of weight vectors. It writes:

    <out>/inputs/{a,b,c,d}/           the input adapters (float32)
    <out>/peft_merged.safetensors     each case's merged factors: "<case>/<module>/A" (r, in)
                                      and "<case>/<module>/B" (out, r), float32
    <out>/cases.json                  each case's arguments, PEFT's error (if it refused),
                                      the merged config fields and per-module scaling
    <out>/peft_saved/<case>/          a few merged adapters as save_pretrained writes them
    <out>/VERSIONS.json

The merges run in float64 (the model is cast after the adapters are loaded), so
the goldens carry no float32 SVD noise; they are stored as float32.

check loads every adapter directory under <testdata>/loramix_out/ (written by
loramix) with PeftModel.from_pretrained and compares each module's update
scaling * B @ A with PEFT's merged update for the same case id.
"""

import argparse
import inspect
import json
import math
import os
import shutil
import sys

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

import peft
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

BASE = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=128, max_position_embeddings=64)
BASE_SEED = 7

# name: (seed, LoraConfig kwargs). Ranks 8, 4, 8 (+ a second rank-8 adapter),
# alphas that differ from r, rsLoRA on c, c's targets overlap a's but differ.
ADAPTERS = {
    "a": (11, dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"])),
    "b": (12, dict(r=4, lora_alpha=6, target_modules=["q_proj", "v_proj", "down_proj"])),
    "c": (13, dict(r=8, lora_alpha=4, use_rslora=True, target_modules=["q_proj", "k_proj", "up_proj"])),
    "d": (14, dict(r=8, lora_alpha=20, target_modules=["q_proj", "v_proj", "down_proj"])),
}

ALL = ["cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
       "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd"]
DARE = {"dare_linear", "dare_ties", "dare_linear_svd", "dare_ties_svd"}
UNEQUAL_OK = ["cat", "svd", "ties_svd", "dare_linear_svd", "dare_ties_svd", "magnitude_prune_svd"]
PAIR_WEIGHTS = [[1, 1], [0.5, 1], [0.2, 1], [1, 0.05], [1, 0.2], [1, -0.5]]
TRIPLE_WEIGHTS = [[1, 0.5, 0.25], [0.5, -1, 1]]


def cases():
    """Every merge to run, as dicts of add_weighted_adapter arguments."""
    out = []

    def add(group, adapters, weights, ctype, **kw):
        cid = f"{group}-{ctype}-" + "_".join(f"{w:g}" for w in weights)
        for k, v in sorted(kw.items()):
            cid += f"-{k}{v}"
        out.append(dict(id=cid, group=group, adapters=adapters, weights=weights, combination_type=ctype,
                        svd_rank=kw.get("svd_rank"), svd_clamp=kw.get("svd_clamp"),
                        svd_full_matrices=kw.get("full", True), density=kw.get("density"),
                        majority_sign_method=kw.get("sign", "total")))

    groups = [("ad", ["a", "d"], ALL, 0.5), ("ac", ["a", "c"], ALL, 0.3), ("ab", ["a", "b"], ALL, 0.6)]
    for group, ads, types, density in groups:
        for ctype in types:
            weights = PAIR_WEIGHTS if ctype not in DARE else [[1, 1], [0.5, 1]]
            for w in weights:
                add(group, ads, w, ctype, density=density)
    for ctype in ALL:
        for w in TRIPLE_WEIGHTS:
            add("abc", ["a", "b", "c"], w, ctype, density=0.6)
            add("adc", ["a", "d", "c"], w, ctype, density=0.6)
    for ctype in ["cat", "linear", "svd", "ties"]:
        for w in [[1, 1], [1, -0.5]]:
            add("ca", ["c", "a"], w, ctype, density=0.5)
    add("single", ["a"], [0.7], "svd")
    add("single", ["c"], [1.0], "cat")
    add("single", ["b"], [-0.5], "ties", density=0.5)
    # Extra parameters.
    add("ad", ["a", "d"], [0.5, 1], "svd", svd_rank=4)
    add("ad", ["a", "d"], [0.5, 1], "svd", svd_rank=12)
    add("ad", ["a", "d"], [0.5, 1], "svd", svd_clamp=0.9)
    add("ad", ["a", "d"], [0.5, 1], "svd", full=False)
    add("ac", ["a", "c"], [1, -0.5], "svd", svd_clamp=0.95)
    add("abc", ["a", "b", "c"], [1, 0.5, 0.25], "svd", svd_clamp=0.99, svd_rank=6)
    add("ad", ["a", "d"], [0.5, 1], "ties", density=0.5, sign="frequency")
    add("ad", ["a", "d"], [1, -0.5], "ties_svd", density=0.5, sign="frequency")
    add("adc", ["a", "d", "c"], [0.5, -1, 1], "ties", density=0.6, sign="frequency")
    add("ad", ["a", "d"], [0.5, 1], "ties", density=1.0)
    add("ad", ["a", "d"], [0.5, 1], "magnitude_prune", density=0.25)
    add("ad", ["a", "d"], [0.5, 1], "dare_ties", density=0.5, sign="frequency")
    ids = [c["id"] for c in out]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return out


def make_base():
    torch.manual_seed(BASE_SEED)
    cfg = LlamaConfig(**BASE)
    m = LlamaForCausalLM(cfg).eval()
    m.name_or_path = "loramix/merge-llama"
    m.config._name_or_path = "loramix/merge-llama"
    return m


def gen_inputs(out):
    for name, (seed, kw) in ADAPTERS.items():
        pm = get_peft_model(make_base(), LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **kw))
        pm.peft_config["default"].base_model_name_or_path = "loramix/merge-llama"
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for pname, p in pm.named_parameters():
                if "lora_A" in pname or "lora_B" in pname:
                    p.copy_(0.2 * torch.randn(p.shape, generator=g))
        pm.save_pretrained(os.path.join(out, "inputs", name))


def load_all(out):
    """A float64 PeftModel holding adapters a, b, c and d."""
    model = PeftModel.from_pretrained(make_base(), os.path.join(out, "inputs", "a"), adapter_name="a")
    for name in ["b", "c", "d"]:
        model.load_adapter(os.path.join(out, "inputs", name), adapter_name=name)
    return model.double()


def lora_layers(model):
    for mname, m in model.named_modules():
        if isinstance(m, LoraLayer):
            yield mname.removeprefix("base_model.model."), m


def config_fields(cfg):
    d = cfg.to_dict()
    keep = {}
    for k, v in d.items():
        if isinstance(v, set):
            v = sorted(v)
        try:
            json.dumps(v)
        except TypeError:
            v = repr(v)
        keep[k] = v
    return keep


def gen(args):
    out = args.out
    for sub in ["inputs", "peft_saved"]:
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    print("versions", versions)
    with open(os.path.join(out, "VERSIONS.json"), "w") as f:
        json.dump(versions, f, indent=1, sort_keys=True)
    if args.src:
        from peft.tuners.lora.model import LoraModel
        from peft.utils import merge_utils
        with open(args.src, "w") as f:
            for fn in [LoraModel._check_add_weighted_adapter, LoraModel.add_weighted_adapter,
                       LoraModel._svd_generalized_task_arithmetic_weighted_adapter,
                       LoraModel._generalized_task_arithmetic_weighted_adapter]:
                f.write(inspect.getsource(fn) + "\n")
            f.write(inspect.getsource(merge_utils))
    gen_inputs(out)
    model = load_all(out)
    tensors, records = {}, []
    save_ids = {"ac-cat-1_1-density0.3", "ca-svd-1_-0.5-density0.5", "ca-cat-1_1-density0.5",
                "ad-linear-0.5_1-density0.5"}
    torch.manual_seed(1234)
    for i, c in enumerate(cases()):
        name = f"m{i}"
        rec = dict(c)
        try:
            model.add_weighted_adapter(c["adapters"], c["weights"], name, combination_type=c["combination_type"],
                                       svd_rank=c["svd_rank"], svd_clamp=c["svd_clamp"],
                                       svd_full_matrices=c["svd_full_matrices"], density=c["density"],
                                       majority_sign_method=c["majority_sign_method"])
        except Exception as e:  # PEFT refused: the golden is the refusal
            rec["error"] = f"{type(e).__name__}: {e}"
            records.append(rec)
            model.peft_config.pop(name, None)
            continue
        rec["error"] = None
        rec["config"] = config_fields(model.peft_config[name])
        rec["scaling"], rec["modules"], rec["dtype"] = {}, [], None
        # DARE draws torch's random masks: only two linear-style DARE cases keep
        # their factors (loramix checks that each element is a possible draw).
        rec["stored"] = c["combination_type"] not in DARE or (
            c["group"] == "ad" and c["combination_type"] in ("dare_linear", "dare_ties"))
        for mname, m in lora_layers(model):
            if name not in m.lora_A:
                continue
            A = m.lora_A[name].weight.detach()
            B = m.lora_B[name].weight.detach()
            rec["dtype"] = str(A.dtype)
            rec["scaling"][mname] = float(m.scaling[name])
            rec["modules"].append(mname)
            if rec["stored"]:
                tensors[f"{c['id']}/{mname}/A"] = A.float().contiguous()
                tensors[f"{c['id']}/{mname}/B"] = B.float().contiguous()
        if c["id"] in save_ids:
            d = os.path.join(out, "peft_saved", c["id"])
            model.save_pretrained(d, selected_adapters=[name])
            inner = os.path.join(d, name)  # non-default adapters land in a subfolder
            if os.path.isdir(inner):
                for f in os.listdir(inner):
                    shutil.move(os.path.join(inner, f), os.path.join(d, f))
                os.rmdir(inner)
        model.delete_adapter(name)
        records.append(rec)
    save_file(tensors, os.path.join(out, "peft_merged.safetensors"))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"versions": versions, "cases": records}, f, indent=1, sort_keys=True)
    nerr = sum(1 for r in records if r["error"])
    size = os.path.getsize(os.path.join(out, "peft_merged.safetensors"))
    print(f"{len(records)} cases, {nerr} refused, goldens {size / 1e6:.2f} MB")
    for r in records:
        if r["error"]:
            print("  refused", r["id"], r["error"][:120])
    for r in records[:3] + [r for r in records if r["group"] in ("ca", "single")]:
        if not r["error"]:
            cfg = r["config"]
            print("  ", r["id"], "r", cfg["r"], "alpha", cfg["lora_alpha"], "rslora", cfg["use_rslora"],
                  "targets", cfg["target_modules"], "scaling", sorted(set(r["scaling"].values())), r["dtype"])
    return 0


def check(args):
    td = args.testdata
    root = args.dir or os.path.join(td, "loramix_out")
    golden = load_file(os.path.join(td, "peft_merged.safetensors"))
    recs = {r["id"]: r for r in json.load(open(os.path.join(td, "cases.json")))["cases"]}
    report, worst, bad = [], 0.0, 0
    for cid in sorted(os.listdir(root)):
        d = os.path.join(root, cid)
        rec = recs[cid]
        entry = dict(id=cid)
        try:
            model = PeftModel.from_pretrained(make_base(), d, adapter_name="x").double()
            cfg = model.peft_config["x"]
            entry["r"], entry["lora_alpha"], entry["use_rslora"] = cfg.r, cfg.lora_alpha, cfg.use_rslora
            entry["target_modules"] = sorted(cfg.target_modules) if not isinstance(cfg.target_modules, str) \
                else cfg.target_modules
            errs = {}
            for mname, m in lora_layers(model):
                if "x" not in m.lora_A or not rec["stored"] or rec["combination_type"] in DARE:
                    errs[mname] = 0.0
                    continue
                got = m.get_delta_weight("x")
                gA = golden[f"{cid}/{mname}/A"].double()
                gB = golden[f"{cid}/{mname}/B"].double()
                want = rec["scaling"][mname] * (gB @ gA)
                errs[mname] = float((got - want).norm() / max(want.norm(), 1e-30))
            missing = sorted(set(rec["modules"]) - set(errs))
            ids = torch.arange(12).reshape(1, 12)
            with torch.no_grad():
                logits = model(input_ids=ids).logits
            entry.update(max_rel_err=max(errs.values()), missing=missing, finite=bool(torch.isfinite(logits).all()),
                         config_match=(cfg.r == rec["config"]["r"] and cfg.lora_alpha == rec["config"]["lora_alpha"]))
            worst = max(worst, entry["max_rel_err"])
            if entry["max_rel_err"] > 1e-5 or missing or not entry["config_match"]:
                bad += 1
        except Exception as e:
            entry["error"] = f"{type(e).__name__}: {e}"
            bad += 1
        report.append(entry)
        print(json.dumps(entry, sort_keys=True))
    print(f"check: {len(report)} loramix adapters loaded by PEFT {peft.__version__}; worst relative error "
          f"{worst:.3g}; {bad} bad")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--out", default="engine/merge/testdata")
    g.add_argument("--src", default=None, help="also write PEFT's merge source here")
    c = sub.add_parser("check")
    c.add_argument("--testdata", default="engine/merge/testdata")
    c.add_argument("--report", default=None)
    c.add_argument("--dir", default=None, help="adapters to check (default <testdata>/loramix_out)")
    args = ap.parse_args()
    return gen(args) if args.cmd == "gen" else check(args)


if __name__ == "__main__":
    sys.exit(main())
