#!/usr/bin/env python3
"""Golden BLEU / chrF / chrF++ values from sacreBLEU 2.6.0 for suites/metrics.

Usage (on the machine that has sacrebleu installed):

    python3 reference/sacrebleu_golden.py OUTDIR

Writes OUTDIR/sacrebleu_golden.json with the hypothesis/reference pairs (so the
Go tests never regenerate them), the 13a tokenization of every segment,
sentence-level BLEU/chrF/chrF++ per pair (one and two references), corpus-level
scores on the whole set and on subsets, the exact stdout of a few `sacrebleu`
command lines, and bootstrap / paired-bootstrap results.

The pairs are built deterministically (a fixed LCG, no global RNG) from hand
written edge cases and a pool of sentences with perturbations.
"""
import json
import os
import subprocess
import sys
import traceback

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a


class LCG:
    """Tiny deterministic generator (Numerical Recipes constants)."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFF

    def next(self, n):
        self.s = (1664525 * self.s + 1013904223) & 0xFFFFFFFF
        return (self.s >> 8) % n


EDGE = [
    ("", ""),
    ("", "The cat sat on the mat."),
    ("The cat sat on the mat.", ""),
    ("   ", "   "),
    ("\t tabs\tand  spaces \t", "tabs and spaces"),
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat sat on the mat.", "the cat sat on the mat."),
    ("Completely different words here", "Nothing in common with it"),
    ("a", "a"),
    ("a", "b"),
    (".", "."),
    ("1", "1"),
    ("a b", "a b"),
    ("a b c", "a b c d"),
    ("a b c d", "a x c d"),
    ("It is a guide to action which ensures that the military always obeys the commands of the party.",
     "It is a guide to action that ensures that the military will forever heed Party commands."),
    ("the the the the the the the", "The cat is on the mat."),
    ("###> You are the only customer in the store.###> You are the only customer in the store.###> You are",
     "You are the only customer in the store."),
    ("You are the only customer in the store. You are the only customer in the store. You are the only",
     "You are the only customer in the store."),
    # Unicode
    ("L'été dernier, nous sommes allés à Montréal.", "L'été dernier, nous sommes allés à Montréal !"),
    ("Ça coûte 12,50 € — pas cher.", "Ça coûte 12,50 € : pas cher."),
    ("我喜欢学习中文。", "我喜欢学中文。"),
    ("東京は日本の首都です", "東京は日本の首都である"),
    ("I ❤️ NY 🎉🎉", "I ❤️ New York 🎉"),
    ("naïve café résumé", "naive cafe resume"),
    ("e\u0301te\u0301", "\u00e9t\u00e9"),
    ("مرحبا بالعالم", "مرحبا يا عالم"),
    ("Привет, мир!", "Привет мир!"),
    ("Γειά σου Κόσμε", "Γεια σου κόσμε"),
    ("zero\u200bwidth joiner", "zero width joiner"),
    ("non\u00a0breaking\u00a0space", "non breaking space"),
    ("ideographic\u3000space", "ideographic space"),
    ("file\x1cgroup\x1drecord\x1eunit\x1fsep", "file group record unit sep"),
    ("next\x85line\u2028sep\u2029para", "next line sep para"),
    ("vertical\x0btab\x0cfeed\rreturn", "vertical tab feed return"),
    ("trailing nbsp\u00a0", "trailing nbsp"),
    ("ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "fullwidth text"),
    # Numbers
    ("The population is 1,000,000 people.", "The population is 1.000.000 people."),
    ("Pi is 3.14159, roughly.", "Pi is 3.14, roughly."),
    ("Pages 12-15 and 20-25.", "Pages 12 - 15 and 20 - 25."),
    ("It costs $5.99 or €4,50.", "It costs $ 5.99 or € 4,50."),
    ("On 2023-01-01 at 10:30, it was -5°C.", "On 2023-01-01 at 10:30 it was -5 °C."),
    ("Version 2.6.0 was released.", "Version 2.6.0 is released."),
    ("5. item", "5 . item"),
    (".5 and 5. and 5.5.", "0.5 and 5 and 5.5"),
    ("1,2,3,4", "1, 2, 3, 4"),
    ("x,y z.w", "x, y z. w"),
    ("a1.b2,c3", "a1. b2, c3"),
    ("３．１４", "3.14"),
    ("٣٫١٤", "3.14"),
    # Punctuation, quotes, dashes
    ("Hello, world!", "Hello world!"),
    ("Wait... what?!", "Wait… what?!"),
    ("“Quoted” text and ‘single’ quotes", "\"Quoted\" text and 'single' quotes"),
    ("He said \"hi\" and 'bye'.", "He said “hi” and ‘bye’."),
    ("« Bonjour », dit-il.", "« Bonjour » dit-il."),
    ("an en–dash and an em—dash", "an en-dash and an em-dash"),
    ("well-known co-operation --- dash", "well known cooperation - dash"),
    ("e.g. U.S.A. i.e.", "e.g. USA i.e."),
    ("(hi) [test] {x} <y>", "( hi ) [ test ] { x } < y >"),
    ("~`^_|\\ @#%&*+=/", "~ ` ^ _ | \\ @ # % & * + = /"),
    (",,,...;;;:::!!!???", ", , , . . . ; ; ; : : : ! ! ! ? ? ?"),
    ("can't won't it's", "cannot will not it is"),
    ("rock'n'roll", "rock 'n' roll"),
    # Entities and 13a specials
    ("Tom &amp; Jerry &quot;cartoon&quot; &lt;b&gt;", "Tom & Jerry \"cartoon\" <b>"),
    ("&amp;quot; double", "&quot; double"),
    ("<skipped> text <skipped>", "text"),
    ("co-\noperation across\nlines", "cooperation across lines"),
    ("&nbsp; &#39; &apos;", "  ' '"),
    # URLs and emails
    ("See https://example.com/path?q=1&x=2#frag for details.", "See https://example.com/path?q=1&x=2 for details."),
    ("Mail me at john.doe@example.org, thanks.", "Email john.doe@example.org thanks."),
    ("www.debian.org/doc/manuals", "http://www.debian.org/doc/manuals/"),
    # Chat markers
    ("### Human: What is bash?### Assistant: Bash is a shell.", "Bash is a shell."),
    ("###> Assistant: Sure, here is the answer.", "Sure, here is the answer."),
    ("</s>", "</s>"),
]

POOL_EN = [
    "You are the only customer in the store.",
    "The package provides a command-line interface for managing virtual machines.",
    "This library implements the HTTP/2 protocol, as described in RFC 7540.",
    "Please restart the computer to apply the changes.",
    "The file could not be opened: permission denied.",
    "It supports more than 30 languages, including French, German and Japanese.",
    "Click \"OK\" to continue, or \"Cancel\" to abort.",
    "Warning: the disk is almost full (95% used).",
    "The quick brown fox jumps over the lazy dog.",
    "Version 3.2.1 fixes a crash when loading large images (over 2 GB).",
    "I don't know what you mean; could you explain it again?",
    "The meeting starts at 9:30 a.m. on Monday, 12 March 2024.",
    "Bash is the GNU Project's shell, the Bourne Again SHell.",
    "Error %s: unable to connect to %s:%d.",
    "Select the files you want to delete and press Enter.",
    "Wikipedia is a free online encyclopedia, created and edited by volunteers around the world.",
    "Use the --force option to overwrite existing files.",
    "The temperature dropped to -12.5 degrees overnight.",
    "Our team — engineers, designers and writers — worked on it for two years.",
    "She said: “This is the best café in town.”",
    "There are 1,234 items in your basket, worth $56.78 in total.",
    "Download it from https://www.example.org/downloads/latest.tar.gz today!",
    "Why is the sky blue? Because of Rayleigh scattering.",
    "A tiny Llama model can still learn to translate short sentences.",
    "Les fichiers ont été supprimés avec succès.",
    "Impossible d'ouvrir le fichier « config.yaml ».",
    "Voulez-vous vraiment quitter l'application ?",
    "La mise à jour a échoué : espace disque insuffisant.",
    "Cette bibliothèque fournit des fonctions pour lire les fichiers PNG.",
    "Tu es le seul client du magasin.",
    "東京タワーは333メートルです。",
    "北京是中国的首都，有很多历史古迹。",
    "Das Paket enthält Werkzeuge für die Übersetzung von Programmen.",
    "Emoji test: 😀 😃 😄 — all smiles 👍.",
]

FILLER = ["very", "really", "the", "a", "of", "new", "old", "files", "data", "and", "not", "quickly",
          "système", "données", "é", "42", "3.5", "1,000", "-", "'", "\"", "...", "🎉", "中文"]


def perturb(words, rng):
    w = list(words)
    op = rng.next(12)
    if not w:
        return w
    if op == 0:  # drop a word
        del w[rng.next(len(w))]
    elif op == 1 and len(w) > 1:  # swap adjacent
        i = rng.next(len(w) - 1)
        w[i], w[i + 1] = w[i + 1], w[i]
    elif op == 2:  # replace
        w[rng.next(len(w))] = FILLER[rng.next(len(FILLER))]
    elif op == 3:  # insert
        w.insert(rng.next(len(w) + 1), FILLER[rng.next(len(FILLER))])
    elif op == 4:  # lowercase one word
        i = rng.next(len(w))
        w[i] = w[i].lower()
    elif op == 5:  # truncate
        w = w[: max(1, len(w) // 2 + rng.next(3))]
    elif op == 6:  # repeat a phrase
        i = rng.next(len(w))
        w = w[: i + 1] + w[max(0, i - 2): i + 1] + w[i + 1:]
    elif op == 7:  # attach punctuation
        i = rng.next(len(w))
        w[i] = w[i] + [",", ".", "!", "?", ";", ":", ")"][rng.next(7)]
    elif op == 8:  # strip trailing punctuation of last word
        w[-1] = w[-1].rstrip(".!?")
    elif op == 9:  # upper-case a word
        i = rng.next(len(w))
        w[i] = w[i].upper()
    elif op == 10:  # merge two words
        if len(w) > 1:
            i = rng.next(len(w) - 1)
            w[i: i + 2] = [w[i] + w[i + 1]]
    return w


def make_pairs():
    """Returns a list of (hyp, ref, ref2) triples."""
    rng = LCG(20240607)
    out = []
    for h, r in EDGE:
        out.append((h, r, r.upper() if r else "x"))
    n = len(POOL_EN)
    for k in range(340):
        ref = POOL_EN[k % n]
        kind = rng.next(10)
        words = ref.split(" ")
        if kind == 0:
            hyp = ref  # identical
        elif kind == 1:
            hyp = POOL_EN[(k * 7 + 3) % n]  # unrelated sentence
        elif kind == 2:
            hyp = " ".join(POOL_EN[(k + j) % n] for j in range(rng.next(6) + 3))  # long
        elif kind == 3:
            hyp = " ".join(words[: 1 + rng.next(3)])  # very short
        elif kind == 4:
            unit = " ".join(words[: 2 + rng.next(4)])
            hyp = "###> ".join([unit] * (2 + rng.next(5)))  # loop
        else:
            for _ in range(1 + rng.next(4)):
                words = perturb(words, rng)
            hyp = " ".join(words)
        ref2 = " ".join(perturb(ref.split(" "), rng))
        if rng.next(5) == 0:
            ref = ref + " " + POOL_EN[(k + 1) % n]
        out.append((hyp, ref, ref2))
    return out


def bleu_dict(s, sig=None):
    d = {
        "score": s.score, "counts": list(s.counts), "totals": list(s.totals),
        "precisions": list(s.precisions), "bp": s.bp, "sys_len": s.sys_len,
        "ref_len": s.ref_len, "ratio": s.ratio, "format": str(s),
        "format_w1": s.format(width=1),
    }
    if sig is not None:
        d["signature"] = sig
        d["format_sig"] = s.format(width=2, signature=sig)
    return d


def chrf_dict(s, sig=None):
    d = {"score": s.score, "name": s.name, "format": str(s)}
    if sig is not None:
        d["signature"] = sig
    return d


def corpus(hyps, refs_streams):
    bleu = BLEU()
    b = bleu.corpus_score(hyps, refs_streams)
    chrf = CHRF()
    c = chrf.corpus_score(hyps, refs_streams)
    chrfpp = CHRF(word_order=2)
    cpp = chrfpp.corpus_score(hyps, refs_streams)
    return {
        "n": len(hyps),
        "bleu": bleu_dict(b, str(bleu.get_signature())),
        "chrf": chrf_dict(c, str(chrf.get_signature())),
        "chrfpp": chrf_dict(cpp, str(chrfpp.get_signature())),
    }


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    assert sacrebleu.__version__ == "2.6.0", sacrebleu.__version__
    triples = make_pairs()
    hyps = [t[0] for t in triples]
    refs = [t[1] for t in triples]
    refs2 = [t[2] for t in triples]

    tok = Tokenizer13a()
    golden = {
        "sacrebleu_version": sacrebleu.__version__,
        "numpy_version": __import__("numpy").__version__,
        "python_version": sys.version.split()[0],
        "pairs": [{"hyp": h, "ref": r, "ref2": r2} for h, r, r2 in triples],
        "tok13a_hyp": [tok(h) for h in hyps],
        "tok13a_ref": [tok(r) for r in refs],
    }

    sbleu = BLEU(effective_order=True)
    schrf = CHRF()
    schrfpp = CHRF(word_order=2)
    sbleu2 = BLEU(effective_order=True)
    schrf2 = CHRF()
    schrfpp2 = CHRF(word_order=2)
    sent = []
    for h, r, r2 in triples:
        e = {
            "bleu": bleu_dict(sbleu.sentence_score(h, [r])),
            "chrf": schrf.sentence_score(h, [r]).score,
            "chrfpp": schrfpp.sentence_score(h, [r]).score,
            "bleu_2refs": bleu_dict(sbleu2.sentence_score(h, [r, r2])),
            "chrf_2refs": schrf2.sentence_score(h, [r, r2]).score,
            "chrfpp_2refs": schrfpp2.sentence_score(h, [r, r2]).score,
            # the functional API too
            "sentence_bleu": sacrebleu.sentence_bleu(h, [r]).score,
            "sentence_chrf": sacrebleu.sentence_chrf(h, [r]).score,
        }
        sent.append(e)
    golden["sentence"] = sent
    golden["sentence_signatures"] = {
        "bleu": str(sbleu.get_signature()),
        "chrf": str(schrf.get_signature()),
        "chrfpp": str(schrfpp.get_signature()),
        "bleu_2refs": str(sbleu2.get_signature()),
    }

    golden["corpus"] = {
        "all": corpus(hyps, [refs]),
        "first100": corpus(hyps[:100], [refs[:100]]),
        "every3": corpus(hyps[::3], [refs[::3]]),
        "generated": corpus(hyps[len(EDGE):], [refs[len(EDGE):]]),
        "tworefs": corpus(hyps, [refs, refs2]),
        "empty_hyps": corpus(["", ""], [["a b", "c"]]),
        "empty_both": corpus([""], [[""]]),
        "empty_ref": corpus(["a b c"], [[""]]),
        "identical": corpus(refs[len(EDGE):len(EDGE) + 40], [refs[len(EDGE):len(EDGE) + 40]]),
    }
    golden["corpus_bleu_api"] = sacrebleu.corpus_bleu(hyps, [refs]).score
    golden["corpus_chrf_api"] = sacrebleu.corpus_chrf(hyps, [refs]).score

    # A second system for paired tests: drop every 4th word of each hypothesis.
    hyps_b = [" ".join(w for i, w in enumerate(h.split(" ")) if i % 4 != 3) for h in hyps]
    golden["hyps_b"] = hyps_b
    golden["corpus_b"] = corpus(hyps_b, [refs])
    try:
        golden["bootstrap"] = bootstrap(hyps, hyps_b, refs)
    except Exception:
        golden["bootstrap_error"] = traceback.format_exc()
    try:
        golden["cli_index"], golden["cli"] = cli_runs(triples, hyps, refs, refs2, hyps_b)
    except Exception:
        golden["cli_error"] = traceback.format_exc()

    path = os.path.join(outdir, "sacrebleu_golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=0, default=lambda o: o.item())
    print("wrote", path, "pairs", len(triples))
    print(golden["corpus"]["all"]["bleu"]["format_sig"])
    for k in ("bootstrap_error", "cli_error"):
        if k in golden:
            print(golden[k])
    for c in golden.get("cli", []):
        print(c["args"], c["rc"], c["stdout"][:600], c["stderr"][-300:])


def bootstrap(hyps, hyps_b, refs):
    """sacreBLEU's single-system bootstrap and paired bootstrap (seed 12345)."""
    bs = {}
    b1 = BLEU()
    s1 = b1.corpus_score(hyps, [refs], n_bootstrap=1000)
    bs["bleu_single"] = {"score": s1.score, "mean": float(s1._mean), "ci": float(s1._ci),
                         "format": s1.format(width=2, signature=str(b1.get_signature()))}
    c1 = CHRF()
    t1 = c1.corpus_score(hyps, [refs], n_bootstrap=1000)
    bs["chrf_single"] = {"score": t1.score, "mean": float(t1._mean), "ci": float(t1._ci),
                         "format": t1.format(width=2, signature=str(c1.get_signature()))}
    sigs, res = PairedTest([("baseline", hyps), ("system", hyps_b)],
                           {"BLEU": BLEU(), "chrF": CHRF()}, [refs], test_type="bs", n_samples=1000)()
    paired = {}
    for name, rs in res.items():
        if name == "System":
            continue
        paired[name] = [{"score": float(x.score), "p_value": None if x.p_value is None else float(x.p_value),
                         "mean": None if x.mean is None else float(x.mean),
                         "ci": None if x.ci is None else float(x.ci)} for x in rs]
        paired[name + "_signature"] = str(sigs[name])
    # Same system against itself: p should be ~1.
    _, same = PairedTest([("a", hyps), ("b", list(hyps))], {"BLEU": BLEU()}, [refs],
                         test_type="bs", n_samples=1000)()
    paired["BLEU_self_p"] = float(same["BLEU"][1].p_value)
    bs["paired"] = paired
    return bs


def cli_runs(triples, hyps, refs, refs2, hyps_b):
    """Runs `python3 -m sacrebleu` on files of the pairs; returns the indices used and the runs."""
    # The command line: exact stdout. Files hold the pairs without embedded newlines.
    cli_idx = [i for i, t in enumerate(triples) if not any("\n" in x for x in t)]
    work = "/tmp/sbgold"
    os.makedirs(work, exist_ok=True)
    files = {"hyp.txt": [hyps[i] for i in cli_idx], "ref.txt": [refs[i] for i in cli_idx],
             "ref2.txt": [refs2[i] for i in cli_idx], "hyp_b.txt": [hyps_b[i] for i in cli_idx]}
    for name, lines in files.items():
        with open(os.path.join(work, name), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
    runs = [
        ["ref.txt", "-i", "hyp.txt", "-f", "text", "-w", "2", "-m", "bleu"],
        ["ref.txt", "-i", "hyp.txt", "-f", "text", "-m", "bleu", "chrf"],
        ["ref.txt", "-i", "hyp.txt", "-m", "bleu", "chrf"],
        ["ref.txt", "-i", "hyp.txt", "-f", "text", "-w", "2", "-m", "chrf", "--chrf-word-order", "2"],
        ["ref.txt", "-i", "hyp.txt", "-w", "2", "-m", "chrf", "--chrf-word-order", "2"],
        ["ref.txt", "-i", "hyp.txt", "-f", "text", "-w", "2", "-m", "bleu", "chrf", "-b"],
        ["ref.txt", "ref2.txt", "-i", "hyp.txt", "-f", "text", "-w", "2", "-m", "bleu", "chrf"],
        ["ref.txt", "-i", "hyp.txt", "-sl", "-w", "2", "-m", "bleu"],
        ["ref.txt", "-i", "hyp.txt", "-sl", "-m", "chrf"],
        ["ref.txt", "-i", "hyp.txt", "-sl", "-w", "2", "-m", "chrf", "--chrf-word-order", "2"],
        ["ref.txt", "-i", "hyp.txt", "-f", "text", "-w", "2", "-m", "bleu", "chrf", "--confidence"],
        ["ref.txt", "-i", "hyp.txt", "hyp_b.txt", "-f", "text", "-w", "2", "-m", "bleu", "chrf", "--paired-bs"],
    ]
    cli = []
    for args in runs:
        p = subprocess.run([sys.executable, "-m", "sacrebleu", *args], cwd=work, capture_output=True,
                           text=True, encoding="utf-8", env={**os.environ, "PYTHONIOENCODING": "utf-8"})
        cli.append({"args": args, "stdout": p.stdout, "rc": p.returncode, "stderr": p.stderr[-2000:]})
    return cli_idx, cli


if __name__ == "__main__":
    main()
