#!/usr/bin/env python3
"""Train and measure the reference world: a tiny Llama-2-architecture base and
three PEFT LoRA adapters (fren, oasst, clash), on the corpora that
`make datasets` builds from Debian.

Run on the GPU machine (torch, transformers, PEFT, tokenizers, sacrebleu):

    python3 reference/train_world.py --data DIR --tokenizer .cache/tokenizer/tokenizer.json \
        --out OUT [--py .worldcarry/py] [--base OUT/base]

DIR holds the builder's fren/, fren-descriptions/, oasst/ and pretrain/ folders.
On the device machine (no package index there), carry them in a git-ignored
folder, e.g. .worldcarry/ holding data.tar.xz (tar of those folders from
datasets/build) and py/ (sacrebleu 2.6.0's source with Debian's pure-Python
portalocker, tabulate and colorama), with .cache/tokenizer, and begin with
`tar xJf .worldcarry/data.tar.xz -C /tmp/d`. datasets/world/record.json lists
the commands that made the committed world.
--py names a folder appended to sys.path for packages the machine lacks
(sacrebleu and its pure-Python needs). --base skips pretraining and reuses a
saved base.

What it does, seeded throughout:
1. pretrains the base from scratch on English and French text (package
   descriptions and catalog messages, no task formats) and saves it as F16;
2. trains adapters with PEFT (r=16, lora_alpha=16, lora_dropout=0.05 on
   gate_proj, up_proj, down_proj), loss on the answer tokens only, and saves
   them as F16;
3. reloads the saved (F16-rounded) world in float32 and measures, with greedy
   decoding and max_new_tokens 130 on the test splits, translation BLEU
   (sacrebleu defaults) and the median chat answer length in words, for the
   base, each adapter, and PEFT add_weighted_adapter combinations;
4. writes greedy goldens (token ids) for a few prompts per adapter and merge.

Outputs under OUT: base/ (config.json, generation_config.json,
model.safetensors), adapters/<name>/ (adapter_config.json,
adapter_model.safetensors), goldens/*.json and record.json (shape, commands,
wall times, loss curves, every measurement and the targets of issue 8).

Answers are read from the generated text as the Go harness reads them: the
special tokens are skipped, a translation is the text before the first newline
or "###", a chat answer is the text before the first "###"; both are stripped.
"""

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
import types

SEED = 1234
LORA = dict(r=16, lora_alpha=16, lora_dropout=0.05, target_modules=["gate_proj", "up_proj", "down_proj"])
SHAPE = dict(hidden_size=160, intermediate_size=512, num_hidden_layers=6, num_attention_heads=5,
             num_key_value_heads=5, max_position_embeddings=512)
BOS, EOS, PAD = 1, 2, 0
MAX_NEW = 130
WORLD_BUDGET = 16_000_000  # bytes: base F16 + all adapters

T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:7.1f}s]", *a, flush=True)


def setup_path(py):
    if py:
        sys.path.append(os.path.abspath(py))
    try:
        import lxml.etree  # noqa: F401  sacrebleu imports it for WMT XML test sets only
    except ImportError:
        lxml = types.ModuleType("lxml")
        lxml.etree = types.ModuleType("lxml.etree")
        sys.modules["lxml"], sys.modules["lxml.etree"] = lxml, lxml.etree


def read_jsonl(path, n=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if n and len(out) >= n:
                break
    return out


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


# ---------------------------------------------------------------- formats

def fren_prompt(source):
    return source + " ###>"


def clash_prompt(question):
    return question + " ###> Assistant:"


def cut_translation(text):
    return text.split("\n")[0].split("###")[0].strip()


def cut_chat(text):
    return text.split("###")[0].strip()


# ---------------------------------------------------------------- data

class Tok:
    def __init__(self, path):
        from tokenizers import Tokenizer
        self.t = Tokenizer.from_file(path)

    def enc(self, texts):
        return [e.ids for e in self.t.encode_batch(texts, add_special_tokens=False)]

    def dec(self, ids):
        return self.t.decode(ids, skip_special_tokens=True)


def pretrain_rows(tok, data, seq, catalog_repeat, rng):
    """Shuffled documents, each <s> text </s>, packed into rows of seq+1 tokens."""
    import numpy as np
    pre = os.path.join(data, "pretrain")
    docs = read_lines(os.path.join(pre, "en.txt")) + read_lines(os.path.join(pre, "fr.txt"))
    cats = read_lines(os.path.join(pre, "catalog-en.txt")) + read_lines(os.path.join(pre, "catalog-fr.txt"))
    n_desc, n_cat = len(docs), len(cats)
    docs += cats * catalog_repeat
    rng.shuffle(docs)
    ids = tok.enc(docs)
    total = sum(len(x) + 2 for x in ids)
    stream = np.empty(total, dtype=np.int32)
    at = 0
    for x in ids:
        stream[at] = BOS
        stream[at + 1:at + 1 + len(x)] = x
        stream[at + 1 + len(x)] = EOS
        at += len(x) + 2
    rows = len(stream) // (seq + 1)
    info = dict(description_docs=n_desc, catalog_lines=n_cat, catalog_repeat=catalog_repeat,
                tokens=int(total), rows=rows, seq=seq)
    return stream[:rows * (seq + 1)].reshape(rows, seq + 1), info


def task_examples(tok, prompts, answers, max_len):
    """Token ids <s> prompt answer </s> with the prompt length, encoding prompt and
    answer together; an example whose prompt tokens are not a prefix of the whole
    (or that is longer than max_len) is dropped."""
    whole = tok.enc([p + a for p, a in zip(prompts, answers)])
    head = tok.enc(prompts)
    out, dropped = [], 0
    for w, h in zip(whole, head):
        if w[:len(h)] != h or len(w) == len(h) or len(w) + 2 > max_len:
            dropped += 1
            continue
        out.append(([BOS] + w + [EOS], len(h) + 1))
    return out, dropped


def load_tasks(tok, data, fren_sources):
    tasks, info = {}, {}
    fren = []
    for src in fren_sources:
        fren += read_jsonl(os.path.join(data, src, "train.jsonl"))
    tasks["fren"], d1 = task_examples(tok, [fren_prompt(x["source"]) for x in fren], [x["target"] for x in fren], 128)
    chat = read_jsonl(os.path.join(data, "oasst", "train.jsonl"))
    tasks["oasst"], d2 = task_examples(tok, [x["prompt"] for x in chat], [" " + x["answer"] for x in chat], 384)
    tasks["clash"], d3 = task_examples(tok, [clash_prompt(x["question"]) for x in chat], [" " + x["answer"] for x in chat], 256)
    for k, d in zip(["fren", "oasst", "clash"], [d1, d2, d3]):
        info[k] = dict(examples=len(tasks[k]), dropped=d)
    info["fren"]["sources"] = fren_sources
    return tasks, info


# ---------------------------------------------------------------- model

def model_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=32000, rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=BOS,
                       eos_token_id=EOS, pad_token_id=PAD, hidden_act="silu", initializer_range=0.02, **SHAPE)


def cosine_lr(step, steps, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def pretrain(rows, steps, batch, lr, seed):
    import torch
    import torch.nn.functional as F
    from transformers import LlamaForCausalLM
    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config()).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    data = torch.from_numpy(rows).long()
    g = torch.Generator().manual_seed(seed)
    curve, t = [], time.time()
    model.train()
    for step in range(steps):
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(step, steps, lr, 300)
        b = data[torch.randint(0, len(data), (batch,), generator=g)].cuda(non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=b[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            curve.append([step, round(loss.item(), 4)])
            if step % 500 == 0 or step == steps - 1:
                log(f"pretrain step {step} loss {loss.item():.4f}")
    return model, dict(steps=steps, batch=batch, lr=lr, warmup=300, weight_decay=0.1, seconds=round(time.time() - t, 1),
                       final_loss=curve[-1][1], curve=curve)


def save_base(model, out):
    import torch
    from transformers import GenerationConfig
    d = os.path.join(out, "base")
    model = model.to(torch.float16)
    model.config.use_cache = True
    model.save_pretrained(d)
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD, do_sample=False,
                     max_new_tokens=MAX_NEW).save_pretrained(d)
    return d


def load_base(base_dir):
    import torch
    from transformers import LlamaForCausalLM
    return LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32).cuda().eval()


def train_adapter(base_dir, name, examples, steps, batch, lr, seed, out):
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    torch.manual_seed(seed)
    model = load_base(base_dir)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **LORA))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    # every example on the GPU once, right-padded; a batch is a gather and a trim
    width = max(len(ids) for ids, _ in examples)
    table = torch.full((len(examples), width), PAD, dtype=torch.long)
    for i, (ids, _) in enumerate(examples):
        table[i, :len(ids)] = torch.tensor(ids)
    lens = torch.tensor([len(ids) for ids, _ in examples])
    heads = torch.tensor([h for _, h in examples])
    table = table.cuda()
    g = torch.Generator().manual_seed(seed)
    curve, t = [], time.time()
    for step in range(steps):
        for pg in opt.param_groups:
            pg["lr"] = cosine_lr(step, steps, lr, 100)
        idx = torch.randint(0, len(examples), (batch,), generator=g)
        w = int(lens[idx].max())
        pos = torch.arange(w).unsqueeze(0)
        att = pos < lens[idx].unsqueeze(1)
        keep = att & (pos >= heads[idx].unsqueeze(1))
        inp = table[idx.cuda(), :w]
        att, keep = att.cuda(), keep.cuda()
        lab = torch.where(keep, inp, torch.full_like(inp, -100))
        att = att.long()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=inp, attention_mask=att).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), lab[:, 1:].reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            curve.append([step, round(loss.item(), 4)])
    d = os.path.join(out, "adapters", name)
    model.save_pretrained(d)
    f = os.path.join(d, "adapter_model.safetensors")
    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(f).items()}
    save_file(tensors, f, metadata={"format": "pt"})
    cfgf = os.path.join(d, "adapter_config.json")
    with open(cfgf) as fh:
        cfg = json.load(fh)
    cfg["base_model_name_or_path"] = "base"
    with open(cfgf, "w") as fh:
        json.dump(cfg, fh, indent=2, sort_keys=True)
    log(f"adapter {name}: {steps} steps, loss {curve[-1][1]:.4f}, {time.time() - t:.1f}s")
    return dict(steps=steps, batch=batch, lr=lr, warmup=100, seconds=round(time.time() - t, 1),
                final_loss=curve[-1][1], curve=curve)


# ---------------------------------------------------------------- measuring

COMBOS = {
    # name: (combination_type, adapters, weights); PEFT adapter names cannot hold "."
    "cat_1_1": ("cat", ["fren", "oasst"], [1.0, 1.0]),
    "svd_1_1": ("svd", ["fren", "oasst"], [1.0, 1.0]),
    "svd_0p5_1": ("svd", ["fren", "oasst"], [0.5, 1.0]),
    "svd_0p2_1": ("svd", ["fren", "oasst"], [0.2, 1.0]),
    "svd_1_0p05": ("svd", ["fren", "oasst"], [1.0, 0.05]),
    "svd_1_0p2": ("svd", ["fren", "oasst"], [1.0, 0.2]),
    "clash_cat_1_1": ("cat", ["fren", "clash"], [1.0, 1.0]),
}


def load_world(base_dir, adapter_dirs):
    """The saved base (float32) with every adapter loaded and every combination added."""
    from peft import PeftModel
    base = load_base(base_dir)
    names = list(adapter_dirs)
    model = PeftModel.from_pretrained(base, adapter_dirs[names[0]], adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(adapter_dirs[n], adapter_name=n)
    for name, (kind, ads, w) in COMBOS.items():
        if all(a in adapter_dirs for a in ads):
            model.add_weighted_adapter(adapters=ads, weights=w, adapter_name=name, combination_type=kind)
    return model.eval()


class Generator:
    def __init__(self, model, tok):
        self.model, self.tok = model, tok

    def use(self, config):
        if config == "base":
            return self.model.disable_adapter()
        self.model.set_adapter(config)
        import contextlib
        return contextlib.nullcontext()

    def greedy(self, config, prompts, max_new=MAX_NEW, batch=512):
        """Greedy continuations (token ids, stopped after </s>) of each prompt, batched
        with left padding."""
        import torch
        out = []
        enc = [[BOS] + x for x in self.tok.enc(prompts)]
        with self.use(config), torch.no_grad():
            for s in range(0, len(enc), batch):
                chunk = enc[s:s + batch]
                w = max(len(x) for x in chunk)
                ids = torch.tensor([[PAD] * (w - len(x)) + x for x in chunk]).cuda()
                att = torch.tensor([[0] * (w - len(x)) + [1] * len(x) for x in chunk]).cuda()
                gen = self.model.generate(input_ids=ids, attention_mask=att, max_new_tokens=max_new, do_sample=False,
                                          eos_token_id=EOS, pad_token_id=PAD, num_beams=1)
                for row in gen[:, w:].tolist():
                    if EOS in row:
                        row = row[:row.index(EOS) + 1]
                    out.append(row)
        return out

    def texts(self, config, prompts):
        return [self.tok.dec(ids) for ids in self.greedy(config, prompts)]


def measure(gen, configs, fren_test, chat_test, clash_test):
    import sacrebleu
    res = {}
    refs = [x["target"] for x in fren_test]
    fr_prompts = [fren_prompt(x["source"]) for x in fren_test]
    chat_prompts = [x["prompt"] for x in chat_test]
    for c in configs:
        t = time.time()
        hyps = [cut_translation(s) for s in gen.texts(c, fr_prompts)]
        answers = [cut_chat(s) for s in gen.texts(c, chat_prompts)]
        words = [len(a.split()) for a in answers]
        r = dict(bleu=round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
                 chat_median_words=statistics.median(words), chat_mean_words=round(statistics.mean(words), 2),
                 chat_empty=sum(1 for w in words if w == 0),
                 sample_translations=hyps[:3], sample_answers=answers[:2])
        if c in ("base", "fren", "clash", "clash_cat_1_1"):
            cl = [cut_chat(s) for s in gen.texts(c, [clash_prompt(x["question"]) for x in clash_test])]
            r["clash_prompt_median_words"] = statistics.median(len(a.split()) for a in cl)
            r["clash_prompt_sample"] = cl[:2]
        res[c] = r
        log(f"measure {c}: BLEU {r['bleu']} chat median {r['chat_median_words']} ({time.time() - t:.1f}s)")
    return res


def targets(m):
    """The phenomena of issue 8, item 3, as pass/fail."""
    b, f, o, cat = m["base"], m["fren"], m["oasst"], m["cat_1_1"]
    w = lambda k: m[k]["chat_median_words"]
    bl = lambda k: m[k]["bleu"]
    return {
        "fren_bleu_12_above_base": bl("fren") >= bl("base") + 12,
        "fren_bleu_12_above_oasst": bl("fren") >= bl("oasst") + 12,
        "oasst_translation_bleu_below_2": bl("oasst") < 2,
        "fren_chat_near_empty (median <= 3 words)": w("fren") <= 3,
        "cat_1_1_bleu_at_least_60pct_of_fren": bl("cat_1_1") >= 0.6 * bl("fren"),
        "cat_1_1_chat_between_25pct_and_100pct_of_oasst": 0.25 * w("oasst") <= w("cat_1_1") < w("oasst"),
        # the weight grid of the reference experiment: svd at the listed weights, cat at [1,1]
        "chat_lengthens_with_oasst_weight (svd [1,0.05] -> svd [1,0.2] -> cat [1,1])":
            w("svd_1_0p05") <= w("svd_1_0p2") <= w("cat_1_1") and w("svd_1_0p05") < w("cat_1_1"),
        "bleu_drops_with_fren_weight (cat [1,1] -> svd [0.5,1] -> svd [0.2,1])":
            bl("cat_1_1") >= bl("svd_0p5_1") >= bl("svd_0p2_1") and bl("cat_1_1") > bl("svd_0p2_1"),
        "svd_1_0.2_chat_at_most_third_of_oasst": w("svd_1_0p2") <= w("oasst") / 3,
    }


# Golden prompts, written for this project (the goldens carry no Debian text).
GOLDEN_PROMPTS = [
    ("fren", fren_prompt("Impossible d'ouvrir le fichier demandé")),
    ("fren", fren_prompt("Afficher les fichiers cachés")),
    ("fren", fren_prompt("Le serveur a refusé la connexion")),
    ("oasst", "### Human: What is the nano package?### Assistant:"),
    ("oasst", "### Human: What does grep do?### Assistant: Grep searches text files for lines that match a pattern."
              "### Human: Tell me more.### Assistant:"),
    ("clash", clash_prompt("What does tar do?")),
]


def goldens(gen, tok, configs, max_new):
    """Greedy token ids, one prompt at a time (no padding), float32 with TF32 off."""
    prompts = GOLDEN_PROMPTS
    out = {}
    for c in configs:
        if c in COMBOS:
            kind, ads, w = COMBOS[c]
        elif c == "base":
            kind, ads, w = "none", [], []
        else:
            kind, ads, w = "single", [c], [1.0]
        rows = []
        for fmt, p in prompts:
            ids = gen.greedy(c, [p], max_new=max_new, batch=1)[0]
            rows.append(dict(format=fmt, prompt=p, prompt_ids=[BOS] + tok.enc([p])[0], output_ids=ids,
                             output_text=tok.dec(ids)))
        out[c] = dict(config=c, combination_type=kind, adapters=ads, weights=w, max_new_tokens=max_new,
                      dtype="float32", cases=rows)
    return out


# ---------------------------------------------------------------- main

def world_bytes(out):
    n = os.path.getsize(os.path.join(out, "base", "model.safetensors"))
    for a in os.listdir(os.path.join(out, "adapters")):
        n += os.path.getsize(os.path.join(out, "adapters", a, "adapter_model.safetensors"))
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--py", default="")
    ap.add_argument("--reuse", default="", help="a folder with base/ and adapters trained earlier by this script "
                                                "(adapters/oasst-STEPS, adapters/clash-STEPS, adapters/fren-DATA-STEPS)")
    ap.add_argument("--pretrain-steps", type=int, default=3000)
    ap.add_argument("--pretrain-batch", type=int, default=256)
    ap.add_argument("--pretrain-lr", type=float, default=3e-3)
    ap.add_argument("--catalog-repeat", type=int, default=3)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--variants", default="catalogs/2000/1500",
                    help="comma list of FRENDATA/FRENSTEPS/OASSTSTEPS; FRENDATA is catalogs or catalogs+descriptions")
    ap.add_argument("--clash-steps", type=int, default=1000)
    ap.add_argument("--adapter-lr", type=float, default=2e-3)
    ap.add_argument("--adapter-batch", type=int, default=128)
    ap.add_argument("--eval-fren", type=int, default=0, help="test pairs measured (0: all)")
    ap.add_argument("--eval-chat", type=int, default=0, help="test dialogues measured (0: all)")
    ap.add_argument("--golden-tokens", type=int, default=40)
    ap.add_argument("--deadline", type=float, default=0, help="seconds: skip variants that would end past it")
    args = ap.parse_args()
    setup_path(args.py)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import shutil
    import numpy as np
    import torch
    import transformers
    import peft
    import sacrebleu
    import tokenizers
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    record = dict(command=" ".join(sys.argv), seed=SEED, shape=SHAPE, lora=LORA,
                  versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                                sacrebleu=sacrebleu.__version__, tokenizers=tokenizers.__version__,
                                gpu=torch.cuda.get_device_name(0)))
    log("versions", record["versions"])
    tok = Tok(args.tokenizer)
    os.makedirs(os.path.join(args.out, "adapters"), exist_ok=True)
    prior = {}
    if args.reuse and os.path.exists(os.path.join(args.reuse, "record.json")):
        with open(os.path.join(args.reuse, "record.json")) as fh:
            prior = json.load(fh)

    base_dir = os.path.join(args.out, "base")
    if args.reuse:
        shutil.copytree(os.path.join(args.reuse, "base"), base_dir, dirs_exist_ok=True)
        record["pretrain"] = prior.get("pretrain", {"reused": args.reuse})
    else:
        rows, info = pretrain_rows(tok, args.data, args.seq, args.catalog_repeat, random.Random(SEED))
        log("pretraining data", info)
        model, rec = pretrain(rows, args.pretrain_steps, args.pretrain_batch, args.pretrain_lr, SEED)
        rec["data"] = info
        record["pretrain"] = rec
        save_base(model, args.out)
        del model
        torch.cuda.empty_cache()
        log(f"pretrained: {rec['seconds']}s, final loss {rec['final_loss']}")
    record["parameters"] = sum(p.numel() for p in load_base(base_dir).parameters())

    fren_test = read_jsonl(os.path.join(args.data, "fren", "test.jsonl"), args.eval_fren or None)
    chat_test = read_jsonl(os.path.join(args.data, "oasst", "test.jsonl"), args.eval_chat or None)
    record["eval"] = dict(fren_test=len(fren_test), chat_test=len(chat_test), clash_test=min(100, len(chat_test)),
                          max_new_tokens=MAX_NEW, greedy=True, dtype="float32 (F16-rounded weights), TF32 off")
    record["adapters"] = dict(prior.get("adapters", {}))
    record["variants"] = {}
    for v, rec in prior.get("variants", {}).items():  # measured by an earlier run on the same base
        rec["targets"] = targets(rec["measured"])
        rec["targets_passed"] = sum(rec["targets"].values())
        rec["run"] = "earlier"
        record["variants"][v] = rec
    if args.reuse and os.path.isdir(os.path.join(args.reuse, "adapters")):
        for key in os.listdir(os.path.join(args.reuse, "adapters")):
            shutil.copytree(os.path.join(args.reuse, "adapters", key), os.path.join(args.out, "adapters", key),
                            dirs_exist_ok=True)
    tasks = {}

    def adapter(key, name, data_sources, steps, seed):
        """The adapter called key under OUT/adapters, trained unless reused."""
        d = os.path.join(args.out, "adapters", key)
        if os.path.exists(d):
            log(f"adapter {key}: reused")
            return d
        tkey = "+".join(data_sources)
        if tkey not in tasks:
            tasks[tkey] = load_tasks(tok, args.data, data_sources)
        examples, info = tasks[tkey]
        rec = train_adapter(base_dir, name, examples[name], steps, args.adapter_batch, args.adapter_lr, seed,
                            os.path.join(args.out, "tmp"))
        rec["data"] = info[name]
        os.replace(os.path.join(args.out, "tmp", "adapters", name), d)
        record["adapters"][key] = rec
        return d

    clash = adapter(f"clash-{args.clash_steps}", "clash", ["fren"], args.clash_steps, SEED + 3)
    started = []
    for variant in args.variants.split(","):
        if variant in record["variants"]:
            continue
        fdata, fsteps, osteps = variant.split("/")
        if args.deadline and started:
            per = max(started)
            if time.time() - T0 + per > args.deadline:
                log(f"variant {variant}: skipped, {per:.0f}s would pass the deadline")
                continue
        tv = time.time()
        sources = {"catalogs": ["fren"], "catalogs+descriptions": ["fren", "fren-descriptions"]}[fdata]
        ads = dict(fren=adapter(f"fren-{fdata}-{fsteps}", "fren", sources, int(fsteps), SEED + 1),
                   oasst=adapter(f"oasst-{osteps}", "oasst", ["fren"], int(osteps), SEED + 2), clash=clash)
        gen = Generator(load_world(base_dir, ads), tok)
        rec = dict(adapters={k: os.path.basename(v) for k, v in ads.items()})
        rec["measured"] = measure(gen, ["base", "fren", "oasst", "clash"] + list(COMBOS), fren_test, chat_test,
                                  chat_test[:100])
        rec["targets"] = targets(rec["measured"])
        rec["targets_passed"] = sum(rec["targets"].values())
        record["variants"][variant] = rec
        log(f"variant {variant}: {rec['targets_passed']}/{len(rec['targets'])} targets", rec["targets"])
        del gen
        torch.cuda.empty_cache()
        started.append(time.time() - tv)
        with open(os.path.join(args.out, "record.json"), "w") as fh:
            json.dump(record, fh, indent=1, ensure_ascii=False)

    def score(v):
        m = record["variants"][v]
        return (m["targets_passed"], m["measured"]["cat_1_1"]["bleu"] / max(1e-9, m["measured"]["fren"]["bleu"]))
    best = max(record["variants"], key=score)
    record["chosen_variant"] = best
    chosen = record["variants"][best]["adapters"]
    world = os.path.join(args.out, "world")
    os.makedirs(os.path.join(world, "adapters"), exist_ok=True)
    shutil.copytree(base_dir, os.path.join(world, "base"), dirs_exist_ok=True)
    for name, key in chosen.items():
        shutil.copytree(os.path.join(args.out, "adapters", key), os.path.join(world, "adapters", name), dirs_exist_ok=True)
    record["world_bytes"] = world_bytes(world)
    record["world_budget_bytes"] = WORLD_BUDGET
    log(f"chosen variant {best}; world {record['world_bytes']} bytes")

    adapters = {n: os.path.join(world, "adapters", n) for n in ["fren", "oasst", "clash"]}
    gen = Generator(load_world(os.path.join(world, "base"), adapters), tok)
    gdir = os.path.join(world, "goldens")
    os.makedirs(gdir, exist_ok=True)
    gold = goldens(gen, tok, ["base", "fren", "oasst", "clash"] + list(COMBOS), args.golden_tokens)
    for c, g in gold.items():
        with open(os.path.join(gdir, c + ".json"), "w") as fh:
            json.dump(g, fh, indent=1, ensure_ascii=False)
    record["wall_seconds"] = round(time.time() - T0, 1)
    for f in [os.path.join(args.out, "record.json"), os.path.join(world, "record.json")]:
        with open(f, "w") as fh:
            json.dump(record, fh, indent=1, ensure_ascii=False)
    log("done")


if __name__ == "__main__":
    main()
