#!/usr/bin/env python3
"""Make the tiny random Llama checkpoints and PEFT LoRA adapters under testdata/tiny.

Run on a machine with torch, transformers and PEFT (the GPU machine):

    python3 reference/make_tiny.py --out testdata/tiny

Everything is seeded, so a rerun with the same library versions gives the same
bytes. Layout written:

    <out>/llama-mha, llama-gqa, llama-tied      HF checkpoints, float32 safetensors
    <out>/<model>/adapters/<name>/              PEFT adapters (save_pretrained)
    <out>/formats/gqa-sharded, gqa-bin, gqa-f16, gqa-bf16
                                                llama-gqa saved other ways
    <out>/golden/<model>.<adapter>.json         per-module r, alpha, scaling and
                                                shapes as PEFT resolved them
    <out>/VERSIONS.json                         library versions used

No logits here: reference/parity.py (another script) records those.
"""

import argparse
import copy
import inspect
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

try:
    import peft
    from peft import LoraConfig, get_peft_model
except ImportError:  # the script says so and stops: adapters need PEFT
    peft = None

COMMON = dict(
    hidden_size=64,
    intermediate_size=172,  # deliberately not a multiple of 8 or 64
    num_hidden_layers=2,
    max_position_embeddings=128,
    bos_token_id=1,
    eos_token_id=2,
    initializer_range=0.1,
)

MODELS = {
    # name: (seed, extra config, rope scaling factor or None)
    "llama-mha": (1, dict(vocab_size=320, num_attention_heads=4, num_key_value_heads=4,
                          rms_norm_eps=1e-5, tie_word_embeddings=False), None),
    "llama-gqa": (2, dict(vocab_size=384, num_attention_heads=4, num_key_value_heads=2,
                          rms_norm_eps=1e-6, tie_word_embeddings=False), 2.0),
    "llama-tied": (3, dict(vocab_size=256, num_attention_heads=8, num_key_value_heads=8,
                           rms_norm_eps=1e-5, tie_word_embeddings=True), None),
}

# name: (seed offset, LoraConfig kwargs)
ADAPTERS = {
    "mlp-r8": (10, dict(r=8, lora_alpha=16, target_modules=["gate_proj", "up_proj", "down_proj"])),
    "attn-rs4": (20, dict(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj", "gate_proj"])),
}

# Extra adapters on llama-gqa that exercise PEFT's per-module resolution.
GQA_EXTRA = {
    "patterns": (30, dict(r=8, lora_alpha=16, target_modules=r".*\.(q_proj|k_proj|down_proj)",
                          rank_pattern={"down_proj": 4, "model.layers.1.self_attn.q_proj": 2},
                          alpha_pattern={"k_proj": 3, "layers.0.mlp.down_proj": 5})),
    "layer1": (40, dict(r=2, lora_alpha=4, target_modules=["o_proj", "k_proj"], layers_to_transform=[1])),
}


def rope_kwargs(factor):
    """Rope settings for the installed transformers (v5 names them rope_parameters)."""
    params = inspect.signature(LlamaConfig.__init__).parameters
    if "rope_parameters" in params:
        rp = {"rope_type": "default", "rope_theta": 10000.0}
        if factor:
            rp = {"rope_type": "linear", "rope_theta": 10000.0, "factor": factor}
        return {"rope_parameters": rp}
    kw = {"rope_theta": 10000.0}
    if factor:
        kw["rope_scaling"] = {"type": "linear", "factor": factor}
    return kw


def make_model(name):
    seed, extra, factor = MODELS[name]
    torch.manual_seed(seed)
    cfg = LlamaConfig(**COMMON, **extra, **rope_kwargs(factor))
    model = LlamaForCausalLM(cfg).eval()
    # HF initialises RMSNorm weights to 1; perturb them so norms are tested too.
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0,
                                               do_sample=False, max_new_tokens=16)
    model.name_or_path = "loramix/tiny-" + name
    model.config._name_or_path = "loramix/tiny-" + name
    return model


def save_bin(model, path):
    """Save as pytorch_model.bin the way transformers does (a torch.save'd state dict)."""
    os.makedirs(path, exist_ok=True)
    try:
        model.save_pretrained(path, safe_serialization=False)
    except TypeError as e:  # a transformers without safe_serialization
        print("save_pretrained(safe_serialization=False) unsupported:", e)
    for f in os.listdir(path):
        if f.endswith(".safetensors") or f == "model.safetensors.index.json":
            os.remove(os.path.join(path, f))
    if not os.path.exists(os.path.join(path, "pytorch_model.bin")):
        model.config.save_pretrained(path)
        model.generation_config.save_pretrained(path)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        torch.save(sd, os.path.join(path, "pytorch_model.bin"))
        print("wrote pytorch_model.bin with torch.save")


def make_adapter(model, model_name, aname, seed_off, kw, out_dir, golden_dir, bin_copy=False):
    base = copy.deepcopy(model)
    base.name_or_path = "loramix/tiny-" + model_name
    lcfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **kw)
    pm = get_peft_model(base, lcfg)
    pm.peft_config["default"].base_model_name_or_path = "loramix/tiny-" + model_name
    g = torch.Generator().manual_seed(MODELS[model_name][0] * 1000 + seed_off)
    with torch.no_grad():
        for pname, p in pm.named_parameters():
            if "lora_A" in pname or "lora_B" in pname:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    path = os.path.join(out_dir, aname)
    pm.save_pretrained(path)
    if bin_copy:
        pm.save_pretrained(path + "-bin", safe_serialization=False)
    # What PEFT resolved, per module: the golden for our own resolution.
    mods = {}
    for mname, m in pm.named_modules():
        if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {}):
            key = mname.removeprefix("base_model.model.")
            mods[key] = dict(r=int(m.r["default"]), alpha=float(m.lora_alpha["default"]),
                             scaling=float(m.scaling["default"]),
                             **{"in": int(m.in_features), "out": int(m.out_features)})
    os.makedirs(golden_dir, exist_ok=True)
    with open(os.path.join(golden_dir, f"{model_name}.{aname}.json"), "w") as f:
        json.dump({"model": model_name, "adapter": aname, "modules": mods}, f, indent=1, sort_keys=True)
    print(f"  adapter {model_name}/{aname}: {len(mods)} modules")


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="testdata/tiny")
    args = ap.parse_args()
    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    torch.use_deterministic_algorithms(True)
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "peft": peft.__version__ if peft else None}
    print("versions", versions)
    with open(os.path.join(out, "VERSIONS.json"), "w") as f:
        json.dump(versions, f, indent=1, sort_keys=True)

    golden = os.path.join(out, "golden")
    for name in MODELS:
        model = make_model(name)
        path = os.path.join(out, name)
        model.save_pretrained(path)
        print(name, sorted(os.listdir(path)))
        if name == "llama-gqa":
            print(open(os.path.join(path, "config.json")).read())
            fmt = os.path.join(out, "formats")
            model.save_pretrained(os.path.join(fmt, "gqa-sharded"), max_shard_size="200KB")
            save_bin(model, os.path.join(fmt, "gqa-bin"))
            copy.deepcopy(model).to(torch.float16).save_pretrained(os.path.join(fmt, "gqa-f16"))
            copy.deepcopy(model).to(torch.bfloat16).save_pretrained(os.path.join(fmt, "gqa-bf16"))
            for d in sorted(os.listdir(fmt)):
                print(" ", d, sorted(os.listdir(os.path.join(fmt, d))))
        if peft is None:
            continue
        adir = os.path.join(path, "adapters")
        adapters = dict(ADAPTERS)
        if name == "llama-gqa":
            adapters.update(GQA_EXTRA)
        for aname, (seed_off, kw) in adapters.items():
            try:
                make_adapter(model, name, aname, seed_off, kw, adir, golden,
                             bin_copy=(name == "llama-gqa" and aname == "mlp-r8"))
            except Exception as e:  # report and go on: the other fixtures still matter
                print(f"  adapter {name}/{aname} FAILED: {type(e).__name__}: {e}")
    if peft is None:
        print("PEFT is not installed: no adapters written", file=sys.stderr)
    for d in sorted(os.listdir(out)):
        print(f"{du(os.path.join(out, d)) / 1024:9.1f} KiB  {d}")
    print(f"{du(out) / 1024:9.1f} KiB  total")
    a = json.load(open(os.path.join(out, "llama-gqa", "adapters", "mlp-r8", "adapter_config.json")))
    print(json.dumps(a, sort_keys=True))
    return 0 if peft else 1


if __name__ == "__main__":
    sys.exit(main())
