#!/usr/bin/env python3
"""Train variants of the world's oasst adapter on the committed base, in
parallel processes on one GPU, each with its greedy goldens and a quick
transformers measurement; fren and clash stay the committed ones.

    python3 reference/train_oasst_variants.py --data DIR --tokenizer .cache/tokenizer/tokenizer.json \
        --py .worldcarry/py --world datasets/world --out OUT --deadline SECONDS \
        NAME:STEPS:LR:WEIGHT_DECAY:SEED ...

Each variant writes OUT/NAME.tar holding adapters/oasst/ (F16, the layout of
reference/train_world.py), goldens/*.json (transformers greedy ids, float32,
TF32 off, the prompts and configurations of train_world.py) and record.json
(its loss curve and BLEU / median chat words of fren, oasst and cat [1,1] on
the full test splits). OUT/log.txt collects the logs.

Training is train_world.py's adapter training (PEFT r=16, alpha 16, dropout
0.05 on gate/up/down, batch 128, cosine schedule with 100 warmup steps, loss on
the answer tokens only), with two changes: AdamW's weight decay is a variant
parameter, and the loss is computed on the answer positions only (the same
mean, without the lm_head over padding).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_world as tw  # noqa: E402


def train(base_dir, examples, steps, batch, lr, wd, seed, out):
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    torch.manual_seed(seed)
    model = get_peft_model(tw.load_base(base_dir), LoraConfig(task_type="CAUSAL_LM", bias="none", **tw.LORA))
    model.train()
    inner = model.base_model.model  # LlamaForCausalLM with LoRA layers inside
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=wd)
    width = max(len(ids) for ids, _ in examples)
    table = torch.full((len(examples), width), tw.PAD, dtype=torch.long)
    for i, (ids, _) in enumerate(examples):
        table[i, :len(ids)] = torch.tensor(ids)
    lens = torch.tensor([len(ids) for ids, _ in examples])
    heads = torch.tensor([h for _, h in examples])
    table = table.cuda()
    g = torch.Generator().manual_seed(seed)
    curve, t = [], time.time()
    for step in range(steps):
        for pg in opt.param_groups:
            pg["lr"] = tw.cosine_lr(step, steps, lr, 100)
        idx = torch.randint(0, len(examples), (batch,), generator=g)
        w = int(lens[idx].max())
        pos = torch.arange(w).unsqueeze(0)
        att = pos < lens[idx].unsqueeze(1)
        keep = (att & (pos >= heads[idx].unsqueeze(1))).cuda()  # (batch, w): answer tokens
        inp = table[idx.cuda(), :w]
        att = att.long().cuda()
        sel = keep[:, 1:]  # position i predicts token i+1
        with torch.autocast("cuda", dtype=torch.bfloat16):
            h = inner.model(input_ids=inp, attention_mask=att, use_cache=False).last_hidden_state  # (batch, w, hidden)
            logits = inner.lm_head(h[:, :-1][sel])  # (answer tokens, vocab)
        loss = F.cross_entropy(logits.float(), inp[:, 1:][sel])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            curve.append([step, round(loss.item(), 4)])
    d = os.path.join(out, "adapters", "oasst")
    model.save_pretrained(os.path.join(out, "tmp"))
    os.makedirs(os.path.dirname(d), exist_ok=True)
    os.replace(os.path.join(out, "tmp"), d)
    f = os.path.join(d, "adapter_model.safetensors")
    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(f).items()}
    save_file(tensors, f, metadata={"format": "pt"})
    cfgf = os.path.join(d, "adapter_config.json")
    with open(cfgf) as fh:
        cfg = json.load(fh)
    cfg["base_model_name_or_path"] = "base"
    with open(cfgf, "w") as fh:
        json.dump(cfg, fh, indent=2, sort_keys=True)
    rm = os.path.join(d, "README.md")
    if os.path.exists(rm):
        os.remove(rm)
    return dict(steps=steps, batch=batch, lr=lr, warmup=100, weight_decay=wd, seed=seed,
                loss="answer positions only", seconds=round(time.time() - t, 1), final_loss=curve[-1][1], curve=curve)


def one(args, spec):
    import torch
    name, steps, lr, wd, seed = spec.split(":")
    out = os.path.join(args.work, name)
    os.makedirs(out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tok = tw.Tok(args.tokenizer)
    chat = tw.read_jsonl(os.path.join(args.data, "oasst", "train.jsonl"))
    examples, dropped = tw.task_examples(tok, [x["prompt"] for x in chat], [" " + x["answer"] for x in chat], 384)
    base_dir = os.path.join(args.world, "base")
    rec = dict(variant=name, spec=spec, command=" ".join(sys.argv))
    rec["train"] = train(base_dir, examples, int(steps), 128, float(lr), float(wd), int(seed), out)
    rec["train"]["data"] = dict(examples=len(examples), dropped=dropped)
    tw.log(f"{name}: trained, loss {rec['train']['final_loss']} in {rec['train']['seconds']}s")

    def save():
        with open(os.path.join(out, "record.json"), "w") as fh:
            json.dump(rec, fh, indent=1, ensure_ascii=False)
        subprocess.run(["tar", "cf", os.path.join(args.out, name + ".tar.tmp"), "-C", out, "adapters", "record.json"]
                       + (["goldens"] if os.path.isdir(os.path.join(out, "goldens")) else []), check=True)
        os.replace(os.path.join(args.out, name + ".tar.tmp"), os.path.join(args.out, name + ".tar"))
    save()
    ads = dict(fren=os.path.join(args.world, "adapters", "fren"), oasst=os.path.join(out, "adapters", "oasst"),
               clash=os.path.join(args.world, "adapters", "clash"))
    gen = tw.Generator(tw.load_world(base_dir, ads), tok)
    gold = tw.goldens(gen, tok, ["base", "fren", "oasst", "clash"] + list(tw.COMBOS), args.golden_tokens)
    os.makedirs(os.path.join(out, "goldens"), exist_ok=True)
    for c, gd in gold.items():
        with open(os.path.join(out, "goldens", c + ".json"), "w") as fh:
            json.dump(gd, fh, indent=1, ensure_ascii=False)
    save()
    tw.log(f"{name}: goldens written")
    fren_test = tw.read_jsonl(os.path.join(args.data, "fren", "test.jsonl"))
    chat_test = tw.read_jsonl(os.path.join(args.data, "oasst", "test.jsonl"))
    rec["measured"] = tw.measure(gen, ["fren", "oasst", "cat_1_1"], fren_test, chat_test, chat_test[:100])
    save()
    tw.log(f"{name}: done")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--world", default="datasets/world")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/oasst-variants")
    ap.add_argument("--py", default="")
    ap.add_argument("--golden-tokens", type=int, default=40)
    ap.add_argument("--deadline", type=float, default=0, help="seconds after which unfinished variants are stopped")
    ap.add_argument("--one", action="store_true", help="run the one variant given (used by the parent)")
    ap.add_argument("variants", nargs="+", help="NAME:STEPS:LR:WEIGHT_DECAY:SEED")
    args = ap.parse_args()
    tw.setup_path(args.py)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if args.one:
        one(args, args.variants[0])
        return
    os.makedirs(args.work, exist_ok=True)
    procs = []
    for spec in args.variants:
        name = spec.split(":")[0]
        logf = open(os.path.join(args.work, name + ".log"), "w")
        cmd = [sys.executable, os.path.abspath(__file__), "--one", "--data", args.data, "--tokenizer", args.tokenizer,
               "--world", args.world, "--out", args.out, "--work", args.work, "--py", args.py,
               "--golden-tokens", str(args.golden_tokens), spec]
        procs.append((name, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                             env=dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1"))))
    while any(p.poll() is None for _, p in procs):
        if args.deadline and time.time() - tw.T0 > args.deadline:
            for name, p in procs:
                if p.poll() is None:
                    tw.log(f"{name}: stopped at the deadline")
                    p.kill()
            break
        time.sleep(2)
    with open(os.path.join(args.out, "log.txt"), "w") as fh:
        for name, p in procs:
            p.wait()
            fh.write(f"==== {name} rc {p.returncode}\n")
            with open(os.path.join(args.work, name + ".log")) as lf:
                fh.write(lf.read())
    tw.log("all done")


if __name__ == "__main__":
    main()
