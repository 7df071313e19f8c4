"""A tree as the code: does ``tree-ae`` induce syntax, and what does the tree cost?

    OMP_NUM_THREADS=1 python benchmarks/tree.py [--grammar-train 1500] [--debian-train 2500]

Part 1, where the truth is known. Sentences from the project's probabilistic grammar
(:mod:`anomalia.text.grammar`: right-nesting noun phrases, left-attaching prepositional
phrases and adverbs, relative and complement clauses; 3 to 14 words): ``--grammar-train``
sentences (seed 0) train ``tree-ae`` with no trees shown to it; 500 held-out sentences
(seed 1) are parsed. Unlabeled bracketing F1 against the gold trees (constituents of 2 or
more words, the whole sentence excluded, F1 per sentence averaged, as in the unsupervised
parsing literature), next to right-branching, left-branching and random trees (uniform
random distances, seed 0).

Part 2, real texts. Debian 12 package summaries (../shared/datasets/debian-descriptions,
field ``summary``, median 7 words), shuffled with seed 0: ``--debian-train`` train, 1,000
held out, cut to 16 words. ``tree-ae`` and its flat baseline of the same size (``flat=True``:
the same BiGRU encoder, mean-pooled, the same decoder) are compared on held-out
reconstruction: mean NLL per token (nats; words and end marker, averaged per summary then
over summaries) and teacher-forced token accuracy. Both train the same epochs.

Writes ``benchmarks/results/tree.csv`` (the table), ``benchmarks/results/tree_grammar.png``
(induced and gold trees of 3 held-out grammar sentences) and
``benchmarks/results/tree_debian.png`` (induced trees of 4 held-out summaries). Sized for
about 8 minutes on one thread.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anomalia.datasets import data_dir
from anomalia.detectors.tree import TreeAEDetector
from anomalia.plots import save_figure
from anomalia.text import (
    bracketed,
    generate,
    left_branching,
    mean_bracket_f1,
    plot_trees,
    random_tree,
    right_branching,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEBIAN = data_dir() / "debian-descriptions" / "descriptions.jsonl.gz"
SIZES = {"embed_dim": 32, "hidden": 64, "code_dim": 64, "batch_size": 64, "lr": 2e-3}


def grammar_part(n_train: int, epochs: int) -> tuple[list[dict], object]:
    train = generate(n_train, max_words=14, random_state=0)
    test = generate(500, max_words=14, random_state=1)
    det = TreeAEDetector(**SIZES, max_words=14, epochs=epochs, patience=None, random_state=0)
    start = time.perf_counter()
    det.fit([s.text for s in train])
    seconds = time.perf_counter() - start
    induced = [t for t, _ in det.trees([s.text for s in test])]
    gold = [s.tree for s in test]
    n = [len(s.words) for s in test]
    rng = np.random.default_rng(0)
    rows = [
        ("tree-ae (induced)", induced, seconds),
        ("right-branching", [right_branching(k) for k in n], 0.0),
        ("left-branching", [left_branching(k) for k in n], 0.0),
        ("random", [random_tree(k, rng) for k in n], 0.0),
    ]
    table = [
        {
            "part": "grammar",
            "model": name,
            "F1": 100 * mean_bracket_f1(trees, gold),
            "fit_seconds": sec,
        }
        for name, trees, sec in rows
    ]
    shown = test[:3]
    fig = plot_trees(
        [t for s, t in zip(shown, induced, strict=False) for t in (t, s.tree)],
        [s.words for s in shown for _ in range(2)],
        titles=[f"{kind}: {s.text}" for s in shown for kind in ("induced", "gold")],
    )
    print("grammar trees:", save_figure(fig, RESULTS / "tree_grammar.png"))
    for s, t in zip(shown, induced, strict=False):
        print(f"  induced {bracketed(t, s.words)}\n  gold    {bracketed(s.tree, s.words)}")
    return table, det


def debian_part(n_train: int, epochs: int) -> list[dict]:
    with gzip.open(DEBIAN, "rt", encoding="utf-8") as f:
        summaries = [json.loads(line)["summary"] for line in f]
    summaries = [s for s in summaries if s.strip()]
    order = np.random.default_rng(0).permutation(len(summaries))
    train = [summaries[i] for i in order[:n_train]]
    test = [summaries[i] for i in order[n_train : n_train + 1000]]
    rows = []
    tree_det = None
    for name, flat in (("tree-ae", False), ("flat AE (mean-pooled BiGRU)", True)):
        det = TreeAEDetector(**SIZES, max_words=16, flat=flat, epochs=epochs, patience=None,
                             random_state=0)  # fmt: skip
        start = time.perf_counter()
        det.fit(train)
        seconds = time.perf_counter() - start
        rows.append({
            "part": "debian", "model": name,
            "NLL/token": float(det.anomaly_score(test).mean()),
            "token accuracy %": 100 * float(det.token_accuracy(test).mean()),
            "fit_seconds": seconds,
        })  # fmt: skip
        if not flat:
            tree_det = det
    shown = [t for t in test if 4 <= len(t.split()) <= 10][:4]
    trees = tree_det.trees(shown)
    fig = plot_trees([t for t, _ in trees], [w for _, w in trees])
    print("debian trees:", save_figure(fig, RESULTS / "tree_debian.png"))
    for t, w in trees:
        print("  ", bracketed(t, w))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grammar-train", type=int, default=1500)
    parser.add_argument("--grammar-epochs", type=int, default=5)
    parser.add_argument("--debian-train", type=int, default=2500)
    parser.add_argument("--debian-epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    table, _ = grammar_part(args.grammar_train, args.grammar_epochs)
    if DEBIAN.exists():
        table += debian_part(args.debian_train, args.debian_epochs)
    else:
        print(f"skipped the Debian part: {DEBIAN} not found")
    frame = pd.DataFrame(table)
    frame.to_csv(RESULTS / "tree.csv", index=False)
    print(frame.to_markdown(index=False, floatfmt=".3g"))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
