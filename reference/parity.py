#!/usr/bin/env python3
"""Parity goldens for engine/llama and engine/nf4, written under testdata/parity.

Run on the GPU machine (torch, transformers, PEFT, safetensors; CPU fp32 is
enough), after reference/make_tiny.py has written testdata/tiny:

    python3 reference/parity.py --tiny testdata/tiny --out testdata/parity

For each tiny model (llama-mha, llama-gqa with grouped KV heads and linear
rope scaling, llama-tied with tied embeddings) it writes <model>.safetensors
and <model>.json:

  base.sN          fp32 logits of sequence N alone, (len, vocab)
  batch.sN         the same sequences run as one left-padded batch (attention
                   mask and per-sequence position ids), real positions only
  <adapter>.sN     logits with that PEFT adapter active
  nf4.sN           logits with every decoder linear weight replaced by its
                   NF4 round trip (quantize then dequantize, below): the
                   "dequantize-then-fp32" reference of the NF4 engine
  JSON: the token ids, greedy continuations (20 new tokens, generate with
  do_sample=False) alone, batched, per adapter and under nf4, and the
  smallest top-1/top-2 logit gap along each greedy path.

NF4 golden (nf4.safetensors): bitsandbytes is not installed on that machine,
so the quantizer below is our own torch re-implementation of bitsandbytes'
reference path (bitsandbytes/backends/default/ops.py quantize_4bit and
quantize_blockwise, functional.py quantize_4bit(compress_statistics=True),
create_dynamic_map(signed=True), dequantize_4bit). Details it keeps:
  * full blocks are scaled by x * (1/absmax) (absmax clamped at 1e-38), the
    short last block by x / absmax; values clamped to [-1, 1];
  * nearest code via torch.bucketize on float32 midpoints (right=False): a
    value exactly on a midpoint goes to the lower code;
  * two codes per byte, first element in the high nibble, an odd count
    padded with the code of 0.0;
  * double quantization: offset = absmax.mean() (torch float32), absmax -
    offset quantized in blocks of 256 with the signed dynamic map;
  * dequantization in float32: absmax = dyn[q] * absmax2 + offset, value =
    code[idx] * absmax.
Note: bitsandbytes' native CPU kernel for 8-bit blockwise quantization
(csrc/cpu_ops.cpp) rounds through a 65536-bin lookup table, an
approximation; we follow the exact nearest-code reference path instead.
"""

import argparse
import copy
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

try:
    import peft
    from peft import PeftModel
except ImportError:
    peft = None

MODELS = ["llama-mha", "llama-gqa", "llama-tied"]
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NEW_TOKENS = 20
PAD = 0

NF4_CODE = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
], dtype=torch.float32)


def dynamic_map(max_exponent_bits=7, total_bits=8):
    """The signed dynamic map: per exponent i, the midpoints of a float32
    linspace(0.1, 1, 2**i + 1) times 10**(i - 6), both signs; then 0 and 1."""
    values = []
    for i in range(max_exponent_bits):
        n = 2 ** (i + total_bits - 1 - max_exponent_bits) + 1
        edges = torch.linspace(0.1, 1, n, dtype=torch.float32)
        mids = (edges[:-1] + edges[1:]) / 2.0
        scale = 10 ** (-(max_exponent_bits - 1) + i)
        values += (scale * mids).tolist()
        values += (-scale * mids).tolist()
    values += [0.0, 1.0]
    assert len(values) == 2 ** total_bits
    values.sort()
    return torch.tensor(values, dtype=torch.float32)


def blockwise(x, code, size):
    """Blockwise absmax quantization to the nearest entry of a sorted code."""
    flat = x.reshape(-1).float()
    n = flat.numel()
    rem = n % size
    full = n - rem
    body = flat[:full].reshape(full // size, size)
    absmax = body.abs().max(dim=-1)[0] if full else torch.zeros(0)
    scaled = torch.clamp(body * (1.0 / absmax.clamp(min=1e-38).view(-1, 1)), -1, 1).reshape(-1)
    if rem:
        am = flat[full:].abs().max().clamp(min=1e-38)
        absmax = torch.cat([absmax, am.unsqueeze(0)])
        scaled = torch.cat([scaled, torch.clamp(flat[full:] / am, -1, 1)])
    bounds = (code[:-1] + code[1:]) / 2
    return scaled, absmax, bounds


def quantize_nf4(w):
    """NF4 with double quantization; returns a dict of the stored parts."""
    scaled, absmax, bounds = blockwise(w, NF4_CODE, 64)
    if scaled.numel() % 2:
        scaled = torch.nn.functional.pad(scaled, (0, 1))
    q = torch.bucketize(scaled, bounds, out_int32=True).to(torch.uint8)
    packed = (q[::2] << 4) | q[1::2]
    offset = absmax.mean()
    dyn = dynamic_map()
    s2, absmax2, b2 = blockwise(absmax - offset, dyn, 256)
    qabs = torch.bucketize(s2, b2, out_int32=True).to(torch.uint8)
    return dict(packed=packed, qabsmax=qabs, absmax2=absmax2, offset=offset.reshape(1),
                absmax=absmax, offset64=torch.tensor([absmax.double().mean().item()], dtype=torch.float64))


def dequantize_nf4(parts, shape):
    """float32: absmax = dyn[q]*absmax2[group] + offset; value = code*absmax."""
    dyn = dynamic_map()
    nb = parts["qabsmax"].numel()
    group = torch.arange(nb) // 256
    absmax = dyn[parts["qabsmax"].long()] * parts["absmax2"][group]
    absmax = absmax + parts["offset"][0]
    p = parts["packed"]
    idx = torch.stack([p >> 4, p & 0xF], dim=1).reshape(-1).long()
    n = int(np.prod(shape))
    vals = NF4_CODE[idx[:n]]
    out = vals * absmax[torch.arange(n) // 64]
    return out.reshape(shape)


def nf4_golden(out_dir):
    g = torch.Generator().manual_seed(7)
    cases = {}
    a = torch.randn(96, 200, generator=g) * 0.02  # 300 blocks: groups of 256 + 44
    flat = a.view(-1)
    flat[5 * 64:6 * 64] = 0  # an all-zero block
    mids = ((NF4_CODE[:-1] + NF4_CODE[1:]) / 2)
    blk = torch.cat([mids, -mids, mids * 0.5, torch.tensor([1.0])])  # 15+15+15+1 = 46
    flat[7 * 64:7 * 64 + blk.numel()] = blk  # absmax 1: values land exactly on midpoints
    flat[8 * 64:8 * 64 + 15] = mids * 3.0
    flat[8 * 64 + 15] = -3.0  # absmax 3 with a negative maximum
    cases["a"] = a
    cases["b"] = torch.randn(37, 45, generator=g).half().float()  # 1665: a short last block, odd count
    cases["c"] = (torch.randn(64, 128, generator=g) * 0.05).bfloat16().float()
    cases["d"] = torch.randn(3, 20, generator=g)  # shorter than one block
    tensors = {"dynamic_map": dynamic_map()}
    info = {}
    for name, w in cases.items():
        parts = quantize_nf4(w)
        deq = dequantize_nf4(parts, w.shape)
        tensors[f"{name}.input"] = w.contiguous()
        tensors[f"{name}.packed"] = parts["packed"].contiguous()
        tensors[f"{name}.qabsmax"] = parts["qabsmax"].contiguous()
        tensors[f"{name}.absmax2"] = parts["absmax2"].contiguous()
        tensors[f"{name}.offset"] = parts["offset"].contiguous()
        tensors[f"{name}.absmax"] = parts["absmax"].contiguous()
        tensors[f"{name}.dequant"] = deq.contiguous()
        info[name] = dict(shape=list(w.shape), offset_torch=float(parts["offset"][0]),
                          offset_f64_as_f32=float(np.float32(parts["offset64"][0].item())),
                          rel_err=float((deq - w).norm() / w.norm()))
    save_file(tensors, os.path.join(out_dir, "nf4.safetensors"))
    with open(os.path.join(out_dir, "nf4.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    print("nf4", json.dumps(info))


def load(path):
    try:
        m = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        m = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def logits_each(model, seqs):
    with torch.no_grad():
        return [model(torch.tensor([s])).logits[0].float() for s in seqs]


def logits_batch(model, seqs):
    """Left-padded batch with a mask and per-sequence positions; real rows only."""
    L = max(len(s) for s in seqs)
    ids = torch.tensor([[PAD] * (L - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (L - len(s)) + [1] * len(s) for s in seqs])
    posids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=posids).logits.float()
    return [out[i, L - len(s):] for i, s in enumerate(seqs)]


def greedy(model, seqs, eos):
    """Greedy continuation of each sequence alone; also the smallest top-2 gap."""
    res, gaps = [], []
    for s in seqs:
        with torch.no_grad():
            out = model.generate(input_ids=torch.tensor([s]), attention_mask=torch.ones(1, len(s), dtype=torch.long),
                                 max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=eos, pad_token_id=PAD,
                                 output_scores=True, return_dict_in_generate=True)
        res.append(out.sequences[0, len(s):].tolist())
        gap = min(float(t[0] - t[1]) for t in (sc[0].topk(2).values for sc in out.scores))
        gaps.append(gap)
    return res, gaps


def greedy_batch(model, seqs, eos):
    L = max(len(s) for s in seqs)
    ids = torch.tensor([[PAD] * (L - len(s)) + s for s in seqs])
    mask = torch.tensor([[0] * (L - len(s)) + [1] * len(s) for s in seqs])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False,
                             eos_token_id=eos, pad_token_id=PAD)
    res = []
    for row in out[:, L:].tolist():
        if eos in row:  # generate pads finished rows; keep up to EOS
            row = row[:row.index(eos) + 1]
        res.append(row)
    return res


def nf4_model(model):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("model.layers.") and name.endswith(".weight") and name.split(".")[-2] in LINEARS:
                p.copy_(dequantize_nf4(quantize_nf4(p.data), p.shape))
    return m


def model_golden(tiny, name, out_dir):
    path = os.path.join(tiny, name)
    model = load(path)
    cfg = model.config
    eos = 2
    rng = np.random.default_rng({"llama-mha": 11, "llama-gqa": 12, "llama-tied": 13}[name])
    seqs = [[1] + rng.integers(3, cfg.vocab_size, size=10).tolist(),
            [1] + rng.integers(3, cfg.vocab_size, size=5).tolist()]
    tensors, meta = {}, {"model": name, "seqs": seqs, "new_tokens": NEW_TOKENS, "eos": eos, "pad": PAD}

    def put(prefix, ls):
        for i, l in enumerate(ls):
            tensors[f"{prefix}.s{i}"] = l.contiguous()

    put("base", logits_each(model, seqs))
    put("batch", logits_batch(model, seqs))
    meta["greedy"], meta["greedy_gap"] = greedy(model, seqs, eos)
    meta["greedy_batch"] = greedy_batch(model, seqs, eos)

    qm = nf4_model(model)
    put("nf4", logits_each(qm, seqs))
    meta["nf4_greedy"], meta["nf4_greedy_gap"] = greedy(qm, seqs, eos)

    meta["adapters"] = {}
    adir = os.path.join(path, "adapters")
    if peft is not None and os.path.isdir(adir):
        for aname in sorted(os.listdir(adir)):
            if aname.endswith("-bin"):
                continue
            pm = PeftModel.from_pretrained(load(path), os.path.join(adir, aname), adapter_name=aname).eval()
            put(aname, logits_each(pm, seqs))
            g, gap = greedy(pm, seqs, eos)
            meta["adapters"][aname] = {"greedy": g, "greedy_gap": gap}
    save_file(tensors, os.path.join(out_dir, f"{name}.safetensors"))
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print(name, json.dumps(meta))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", default="testdata/tiny")
    ap.add_argument("--out", default="testdata/parity")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(4)
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "peft": peft.__version__ if peft else None}
    print("versions", versions)
    with open(os.path.join(args.out, "VERSIONS.json"), "w") as f:
        json.dump(versions, f, indent=1, sort_keys=True)
    failed = 0
    for job in [lambda: nf4_golden(args.out)] + [lambda n=n: model_golden(args.tiny, n, args.out) for n in MODELS]:
        try:
            job()
        except Exception as e:  # report and go on: the other goldens still matter
            import traceback
            traceback.print_exc()
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
