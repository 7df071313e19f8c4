"""ADBench tables under the clean (one-class) protocol of DTE (Livernoche et al., ICLR 2024).

For each dataset and seed: shuffle the normal rows with the seed, train on the first half
(normals only), test on the other half plus all anomalies; ROC-AUC of ``anomaly_score``.
The seed is also the detector's ``random_state``. Detectors get raw features (ours
standardise internally; the isolation forest needs no scaling).

    .venv/bin/python benchmarks/adbench_clean.py --detectors iforest ae \
        "ae:dropout=0.1,batch_size=64" --seeds 0 1 2 --out benchmarks/results/x.csv

A spec is ``name`` or ``name:key=value,...``; tuples use ``x`` (``hidden=128x64``,
``hidden=32``); ``bottleneck=d/8`` simulates the rule clip(ceil(d / 8), 2, 32), and
``max_steps=N`` a training budget: ``epochs`` is cut to ceil(N / steps per epoch), where
steps per epoch = ceil(rows after the validation split / batch_size).
Rows already in ``--out`` are skipped (resume). ``--max-rows`` (tuning only) first takes a
stratified subsample of each dataset.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

DATA_DIR = Path("/work/shared/datasets/adbench")
COLUMNS = ["dataset", "detector", "seed", "roc_auc", "fit_seconds", "score_seconds",
           "n_train", "n_test", "n_features"]  # fmt: skip


def parse_value(key: str, text: str):
    if key in ("hidden", "channels"):
        return tuple(int(v) for v in text.split("x"))
    if key == "bottleneck" and text.startswith("d/"):
        return text  # resolved per dataset in make()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"None": None, "True": True, "False": False}.get(text, text)


def parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        params[key.strip()] = parse_value(key.strip(), value.strip())
    return name, params


def make(spec: str, n_train: int, n_features: int, seed: int):
    import anomalia

    name, params = parse_spec(spec)
    max_steps = params.pop("max_steps", None)
    if max_steps is not None:  # simulated through ``epochs`` (no such library parameter yet)
        cls_defaults = anomalia.make_detector(name).get_params()
        get = {**cls_defaults, **params}.get
        n_fit = n_train - int(n_train * get("validation_fraction"))
        per_epoch = math.ceil(n_fit / get("batch_size"))
        params["epochs"] = int(min(get("epochs"), max(1, math.ceil(max_steps / per_epoch))))
    rule = params.get("bottleneck")
    if isinstance(rule, str) and rule.startswith("d/"):
        params["bottleneck"] = int(min(max(math.ceil(n_features / float(rule[2:])), 2), 32))
    return anomalia.make_detector(name, **params, random_state=seed)


def load(path: Path, max_rows: int | None, seed: int):
    import numpy as np
    from sklearn.model_selection import train_test_split

    data = np.load(path)
    X, y = data["X"].astype(np.float64), data["y"].astype(int)
    if max_rows and len(X) > max_rows:
        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=y, random_state=seed)
    return X, y


def clean_split(X, y, seed: int):
    import numpy as np

    normal = np.flatnonzero(y == 0)
    normal = normal[np.random.default_rng(seed).permutation(len(normal))]
    half = len(normal) // 2
    test = np.concatenate([normal[half:], np.flatnonzero(y == 1)])
    return X[normal[:half]], X[test], y[test]


def summary(df, detectors: list[str]) -> str:
    per = df.groupby(["detector", "dataset"])["roc_auc"].mean().unstack("detector")
    lines = [f"{'detector':<48} {'n':>3} {'mean':>7} {'median':>7} {'wins vs iforest':>16}"]
    for det in [d for d in detectors if d in per]:
        col = per[det].dropna()
        wins = "-"
        if "iforest" in per and det != "iforest":
            both = per[[det, "iforest"]].dropna()
            wins = f"{int((both[det] > both['iforest']).sum())}/{len(both)}"
        lines.append(f"{det:<48} {len(col):>3} {100 * col.mean():7.2f} "
                     f"{100 * col.median():7.2f} {wins:>16}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detectors", nargs="+", default=["iforest", "ae", "dae", "vae", "vqvae"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--max-rows", type=int, default=None, help="tuning only: subsample to N rows")
    ap.add_argument("--datasets", nargs="*", default=None, help="substrings of dataset names")
    ap.add_argument("--out", type=Path, required=True, help="CSV of results (resumed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import pandas as pd
    import torch
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(args.threads)
    paths = sorted(args.data_dir.glob("*.npz"), key=lambda p: int(p.name.split("_")[0]))
    if args.datasets:
        wanted = [w.lower() for w in args.datasets]
        paths = [p for p in paths if any(w in p.stem.lower() for w in wanted)]
    done = set()
    if args.out.exists():
        old = pd.read_csv(args.out)
        done = set(zip(old.dataset, old.detector, old.seed, strict=True))
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(columns=COLUMNS).to_csv(args.out, index=False)

    for path in paths:
        dataset = path.stem.split("_", 1)[1].lower()
        for seed in args.seeds:
            todo = [d for d in args.detectors if (dataset, d, seed) not in done]
            if not todo:
                continue
            X, y = load(path, args.max_rows, seed)
            X_train, X_test, y_test = clean_split(X, y, seed)
            for spec in todo:
                det = make(spec, len(X_train), X.shape[1], seed)
                t0 = time.perf_counter()
                det.fit(X_train)
                t1 = time.perf_counter()
                scores = det.anomaly_score(X_test)
                t2 = time.perf_counter()
                auc = roc_auc_score(y_test, np.nan_to_num(scores, nan=np.inf))
                row = [dataset, spec, seed, auc, t1 - t0, t2 - t1,
                       len(X_train), len(X_test), X.shape[1]]  # fmt: skip
                pd.DataFrame([row], columns=COLUMNS).to_csv(
                    args.out, mode="a", header=False, index=False
                )
                print(f"{dataset:<18} seed {seed} {spec:<40} auc {auc:.4f} "
                      f"fit {t1 - t0:7.1f}s score {t2 - t1:5.1f}s", flush=True)  # fmt: skip

    df = pd.read_csv(args.out)
    names = {p.stem.split("_", 1)[1].lower() for p in paths}
    df = df[df.dataset.isin(names) & df.seed.isin(args.seeds) & df.detector.isin(args.detectors)]
    print(f"\nROC-AUC (%) over datasets, seeds {args.seeds} averaged first; {args.out}")
    print(summary(df, args.detectors))


if __name__ == "__main__":
    main()
