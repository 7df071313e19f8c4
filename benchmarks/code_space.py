"""Scoring in code space: which ``code_neighbors`` and ``code_weight`` for ``conv-ae``.

One ``conv-ae`` is fitted per one-vs-rest task (``quality.py``'s MNIST and digits splits,
seed 0); every (k, weight) is then scored from the same reconstruction errors and codes,
exactly as :class:`anomalia.detectors.autoencoder.AEDetector` combines them: the z-scored
error plus ``weight`` times the z-scored mean distance to the k nearest training codes
(training rows leave their own code out). The configuration is chosen leave-one-digit-out:
for each digit, the best mean over the other nine, scored on that digit.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/code_space.py --suite mnist --threads 2

Writes ``results/code_space_<suite>.csv`` (ROC-AUC per task and configuration).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from quality import ROOT, digits, mnist
from sklearn.metrics import roc_auc_score

import anomalia

KS = (1, 2, 3, 5, 10, 20)
WEIGHTS = (0.5, 1.0, 2.0, 3.0, 4.0)


def parts(det, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction errors and flat codes of ``X``, from one encoder pass per batch."""
    both = det._batched(det._checked(X)[0], lambda x: det._score_and_codes(x, flat=True))
    return both[:, 0].double(), both[:, 1:]


def task_rows(group: str, X_train, X_test, y_test) -> list[dict]:
    det = anomalia.make_detector("conv-ae", random_state=0).fit(X_train)
    (r_tr, c_tr), (r_te, c_te) = parts(det, X_train), parts(det, X_test)
    det.code_reference_ = c_tr.numpy()  # every training code (these tasks keep all of them)
    z_recon = ((r_te - r_tr.mean()) / r_tr.std()).numpy()
    rows = [{"group": group, "k": 0, "weight": 0.0, "roc_auc": roc_auc_score(y_test, z_recon)}]
    for k in KS:
        det.code_neighbors = k  # the detector's own search, its own code left out in training
        near_tr = det._code_distance(c_tr, skip_self=torch.arange(len(c_tr))).double()
        near_te = det._code_distance(c_te).double()
        z_near = ((near_te - near_tr.mean()) / near_tr.std()).numpy()
        rows.append({"group": group, "k": k, "weight": np.inf,
                     "roc_auc": roc_auc_score(y_test, z_near)})  # fmt: skip
        for w in WEIGHTS:
            auc = roc_auc_score(y_test, z_recon + w * z_near)
            rows.append({"group": group, "k": k, "weight": w, "roc_auc": auc})
    return rows


def leave_one_out(df: pd.DataFrame) -> tuple[float, list[str]]:
    """Mean ROC-AUC when each task is scored by the configuration best on the others."""
    table = df.pivot_table(index=["k", "weight"], columns="group", values="roc_auc")
    scores, picks = [], []
    for g in table.columns:
        best = table.drop(columns=g).mean(axis=1).idxmax()
        scores.append(table.loc[best, g])
        picks.append(f"k={best[0]} w={best[1]:g}")
    return float(np.mean(scores)), picks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", choices=["mnist", "digits"], default="mnist")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for group, X_train, X_test, y_test in (mnist if args.suite == "mnist" else digits)():
        start = time.perf_counter()
        rows += task_rows(group, X_train, X_test, y_test)
        print(f"  {group}  {time.perf_counter() - start:.0f}s", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(ROOT / "benchmarks" / "results" / f"code_space_{args.suite}.csv", index=False)
    mean = df.groupby(["k", "weight"]).roc_auc.mean().unstack("weight")
    print(mean.to_markdown(floatfmt=".4f"))
    score, picks = leave_one_out(df)
    print(f"\nleave-one-digit-out: {score:.4f}; chosen per held-out digit: {', '.join(picks)}")


if __name__ == "__main__":
    main()
