"""Choosing the ``default`` detector by leave-datasets-out cross-validation.

Member scores are computed once: for every dataset, protocol and seed, each candidate member
is fitted on the protocol's training set and its training (leave-one-out where the member
has one) and test scores are saved. ``--cv`` then evaluates every candidate ensemble (up to
three members, weights 1 or 0.5, each normalisation) from the saved scores, exactly as
:class:`anomalia.detectors.ensemble.EnsembleDetector` computes them, and chooses one
configuration for all data by 4-fold cross-validation over datasets: choose on 24 datasets
(the best mean ROC-AUC over both protocols), score the choice on the other 8, rotate. The
margin reported is the held-out fold's, against the best scikit-learn / PyOD peer of
``anomalia bench``'s results on the same splits (``benchmarks/results/adbench.csv``).
``--holdout`` scores the configurations chosen on all 32 datasets on the four held-out sets
of ``benchmarks/holdout.py`` (cached the same way), which took no part in any choice.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tune_default.py --out /tmp/tune \\
        --protocol unsup clean --seeds 0 1 2
    .venv/bin/python benchmarks/holdout.py --out /tmp/anomalia-holdout
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tune_default.py --out /tmp/tune-holdout \\
        --data-dir /tmp/anomalia-holdout --protocol unsup clean --seeds 0 1 2
    .venv/bin/python benchmarks/tune_default.py --cv --out /tmp/tune --holdout /tmp/tune-holdout
    .venv/bin/python benchmarks/tune_default.py --gate --out /tmp/tune

``--gate`` measures a switch between kNN and the robust Gaussian chosen by the data: how
far the two members agree on the training rows each finds most anomalous.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
KNN = {"max_samples": 4000}
GAUSS = {"support_fraction": 0.5, "score_method": "distance"}
MEMBERS = {
    "knn": ("knn", KNN),
    "knnmean": ("knn", {"method": "mean", **KNN}),
    "knnmean_dup": ("knn", {"method": "mean", "duplicates": "ignore", **KNN}),
    "knn20mean": ("knn", {"n_neighbors": 20, "method": "mean", **KNN}),
    "lof": ("lof", KNN),
    "rgauss": ("gaussian", GAUSS),
    "rgauss_all": ("gaussian", {**GAUSS, "scale_from": "all"}),
    "gauss": ("gaussian", {"score_method": "distance"}),
    "iforest": ("iforest", {}),
    "ecod": ("ecod", {}),  # not registered: scored by _ecod below (no such member ships)
}
#: The configuration shipped before this cross-validation (session 6), for comparison.
SHIPPED = "knnmean + 0.5*rgauss + 0.5*rgauss_all [zscore]"
#: Peers of the cross-validated margin: what a user would otherwise pick up.
PEER_PREFIXES = ("sklearn:", "pyod:")


def _ecod(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ECOD (Li et al., TKDE 2022) as a candidate member, on training ECDFs only: per
    feature, -log of the left and right tail probabilities, summed over features; the score
    is the largest of the left, right and skewness-chosen sums. (PyOD's ECOD refits its
    ECDFs on every batch it scores; this one scores a row alone.)"""
    n = len(X_train)
    S = np.sort(X_train, axis=0)
    sd = np.maximum(X_train.std(axis=0), 1e-12)
    skew = ((X_train - X_train.mean(axis=0)) ** 3).mean(axis=0) / sd**3

    def tails(X: np.ndarray) -> np.ndarray:
        le = np.stack([np.searchsorted(S[:, j], X[:, j], "right") for j in range(X.shape[1])], 1)
        ge = n - np.stack([np.searchsorted(S[:, j], X[:, j], "left") for j in range(X.shape[1])], 1)
        u_left = -np.log(np.clip(le / (n + 1), 1 / (n + 1), 1))
        u_right = -np.log(np.clip(ge / (n + 1), 1 / (n + 1), 1))
        u_skew = np.where(skew < 0, u_left, u_right)
        return np.max([u_left.sum(1), u_right.sum(1), u_skew.sum(1)], axis=0)

    return tails(X_train), tails(X_test)


def score(args: argparse.Namespace) -> None:
    import torch

    import anomalia
    from anomalia import bench

    torch.set_num_threads(1)
    names = args.members or list(MEMBERS)
    for seed in args.seeds:
        for protocol in args.protocol:
            for dataset, path in bench.adbench_datasets(args.data_dir).items():
                file = args.out / f"{protocol}_{dataset}_{seed}.npz"
                saved = dict(np.load(file)) if file.exists() else {}
                todo = [m for m in names if f"{m}_test" not in saved]
                if not todo:
                    continue
                X, y = bench.load_npz(path)
                X_train, X_test, _, y_test = bench.split(X, y, protocol, seed)
                saved["y_test"] = y_test
                for m in todo:
                    name, params = MEMBERS[m]
                    if name == "ecod":
                        saved["ecod_train"], saved["ecod_test"] = _ecod(X_train, X_test)
                        continue
                    seeded = {} if name == "gaussian" else {"random_state": seed}
                    det = anomalia.make_detector(name, **params, **seeded)
                    t0 = time.perf_counter()
                    saved[f"{m}_train"] = det._fit_scored(X_train)
                    saved[f"{m}_test"] = det.anomaly_score(X_test)
                    saved[f"{m}_seconds"] = np.array(time.perf_counter() - t0)
                    print(f"{protocol} {dataset:<18} {seed} {m:<12} "
                          f"{float(saved[f'{m}_seconds']):7.1f}s", flush=True)  # fmt: skip
                np.savez(file, **saved)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by ranks (ties averaged): equal to scikit-learn's, much faster."""
    from scipy.stats import rankdata

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((rankdata(s)[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _normalised(train: np.ndarray, test: np.ndarray, how: str) -> np.ndarray:
    """A member's test scores on the ensemble's scale, fitted on its training scores."""
    if how == "rank":
        return np.searchsorted(np.sort(train), test, side="right") / len(train)
    if how == "zscore":
        c, s = train.mean(), train.std()
    else:
        q1, c, q3 = np.quantile(train, [0.25, 0.5, 0.75])
        s = q3 - q1
    return (test - c) / (s if s > 0 else 1.0)


def candidates(members: list[str]) -> list[tuple[tuple[str, ...], tuple[float, ...], str]]:
    """Every ensemble of one to three members; the first weighs 1, the others 1 or 0.5.
    (Rank normalisation, last of every triple in a first run on seed 0, is left to pairs.)"""
    out = [((m,), (1.0,), "zscore") for m in members]
    for r in (2, 3):
        for combo in itertools.combinations(members, r):
            for w in itertools.product((1.0, 0.5), repeat=r - 1):
                hows = ("zscore", "robust", "rank") if r == 2 else ("zscore", "robust")
                out += [(combo, (1.0, *w), how) for how in hows]
    return out


def evaluate(folder: Path, members: list[str]):
    """ROC-AUC of every candidate on every cached (protocol, dataset, seed), averaged over
    seeds: a DataFrame indexed by candidate, columns (protocol, dataset)."""
    import pandas as pd

    cands = candidates(members)
    cols = {}
    for file in sorted(folder.glob("*.npz")):
        protocol, rest = file.stem.split("_", 1)
        dataset, seed = rest.rsplit("_", 1)
        d = dict(np.load(file))
        if any(f"{m}_test" not in d for m in members):
            continue
        y = d["y_test"]
        z = {(m, how): _normalised(d[f"{m}_train"], d[f"{m}_test"], how)
             for m in members for how in ("zscore", "robust", "rank")}  # fmt: skip
        cols[(protocol, dataset, int(seed))] = [
            _auc(y, sum(w * z[m, how] for m, w in zip(combo, ws, strict=True)))
            for combo, ws, how in cands
        ]
    if not cols:
        raise SystemExit(f"{folder}: no cached file holds the scores of every member "
                         f"({', '.join(members)}); score them first or pass --members")  # fmt: skip
    names = [_name(c) for c in cands]
    df = pd.DataFrame(cols, index=names)
    return df.T.groupby(level=[0, 1]).mean().T  # seeds averaged per dataset


def _name(cand) -> str:
    combo, ws, how = cand
    parts = [m if w == 1 else f"{w:g}*{m}" for m, w in zip(combo, ws, strict=True)]
    return " + ".join(parts) + ("" if len(combo) == 1 else f" [{how}]")


def peers(csv: Path):
    """Mean ROC-AUC over seeds of every scikit-learn / PyOD peer: index detector, columns
    (protocol, dataset); NaN where it timed out or failed."""
    import pandas as pd

    df = pd.read_csv(csv)
    df = df[df.detector.str.startswith(PEER_PREFIXES)]
    ok = df[df.status == "ok"]
    bad = df[df.status != "ok"].set_index(["detector", "protocol", "dataset"]).index
    mean = ok.groupby(["detector", "protocol", "dataset"]).roc_auc.mean()
    mean = mean[~mean.index.isin(bad)]  # a timeout on any seed drops the dataset, as bench
    return mean.unstack(["protocol", "dataset"])


def _best_peer(peer_table, protocol: str, datasets: list[str]) -> tuple[str, float, list[str]]:
    """The peer with the best mean on ``datasets`` (those it finished), its mean, and its
    datasets: the strongest rival a user could have picked after seeing the fold."""
    t = peer_table[protocol][datasets]
    best = t.mean(axis=1).idxmax()
    have = list(t.columns[t.loc[best].notna()])
    return best, float(t.loc[best, have].mean()), have


#: Selection procedures compared by :func:`nested`: a candidate family and a criterion.
FAMILIES = {
    "all candidates": lambda c: True,
    "equal weights": lambda c: "*" not in c,
    "pairs and singles, equal weights": lambda c: "*" not in c and c.count("+") <= 1,
    "pairs, z-score, equal weights": lambda c: (
        "*" not in c and c.count("+") == 1 and c.endswith("[zscore]")
    ),
    "without ecod": lambda c: "ecod" not in c,
}


def _pick(table, peer_table, family: str, criterion: str, datasets: list[str]) -> str:
    """The candidate of ``family`` that ``criterion`` prefers on ``datasets``: the best mean
    over both protocols, or the best worse-of-the-two margin over each protocol's best peer."""
    t = table.loc[[c for c in table.index if FAMILIES[family](c)]]
    means = {p: t[p][datasets].mean(axis=1) for p in ("clean", "unsup")}
    if criterion == "mean of both":
        value = (means["clean"] + means["unsup"]) / 2
    else:
        best = {p: peer_table[p][datasets].mean(axis=1).max() for p in means}
        value = np.minimum(means["clean"] - best["clean"], means["unsup"] - best["unsup"])
    return str(value.idxmax())


def _versus(ours, theirs) -> dict:
    """``ours`` (a Series by dataset) against a peer's ``theirs`` on the datasets both have."""
    theirs = theirs.dropna()
    common = [d for d in ours.index if d in theirs.index]
    diff = ours[common].to_numpy() - theirs[common].to_numpy()
    return {"datasets": len(common), "ours": ours[common].mean(), "theirs": theirs[common].mean(),
            "margin": diff.mean(), "wins": int((diff > 0).sum()),
            "losses": int((diff < 0).sum())}  # fmt: skip


def nested(table, peer_table, folds: list[list[str]]):
    """Out-of-fold ROC-AUC of every selection procedure (family x criterion), and of the
    nested choice: on each outer fold the procedure is itself chosen by an inner 3-fold
    cross-validation over the 24 training datasets, so no held-out number steers it."""
    import pandas as pd

    procs = [(f, c) for f in FAMILIES for c in ("mean of both", "worse margin")]
    datasets = sorted(set(table.columns.get_level_values(1)))
    oof = {proc: {p: {} for p in ("clean", "unsup")} for proc in [*procs, "nested"]}
    chosen = []
    for k, test in enumerate(folds):
        train = [d for d in datasets if d not in test]
        order = np.random.default_rng(k + 1).permutation(train)
        inner = [sorted(order[i::3]) for i in range(3)]
        inner_score = {}
        for proc in procs:
            vals = []
            for held in inner:
                pick = _pick(table, peer_table, *proc, [d for d in train if d not in held])
                vals.append(np.mean([table.loc[pick, p][held].mean() for p in ("clean", "unsup")]))
            inner_score[proc] = np.mean(vals)
            pick = _pick(table, peer_table, *proc, train)
            for p in ("clean", "unsup"):
                oof[proc][p].update(table.loc[pick, p][test].to_dict())
        proc = max(procs, key=inner_score.get)
        pick = _pick(table, peer_table, *proc, train)
        chosen.append({"fold": k + 1, "procedure": " / ".join(proc), "chosen": pick})
        for p in ("clean", "unsup"):
            oof["nested"][p].update(table.loc[pick, p][test].to_dict())
    rows = []
    for proc, by_protocol in oof.items():
        row = {"procedure": proc if proc == "nested" else " / ".join(proc)}
        for p, rival in (("clean", "pyod:KNN"), ("unsup", "sklearn:EllipticEnvelope")):
            v = _versus(pd.Series(by_protocol[p]), peer_table.loc[rival, p])
            row |= {f"{p} ours": v["ours"], f"{p} margin vs {rival}": v["margin"],
                    f"{p} wins-losses": f"{v['wins']}-{v['losses']}"}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(chosen)


def cv(args: argparse.Namespace) -> None:
    import pandas as pd

    members = args.members or list(MEMBERS)
    saved = args.out / "candidates.csv"
    if args.reuse and saved.exists():  # the ROC-AUC table of the last --cv over this cache
        table = pd.read_csv(saved, index_col=0, header=[0, 1])
    else:
        table = evaluate(args.out, members)
        table.to_csv(saved)
    peer = peers(args.results / "adbench.csv")
    datasets = sorted(set(table.columns.get_level_values(1)))
    protocols = sorted(set(table.columns.get_level_values(0)))
    order = np.random.default_rng(0).permutation(datasets)
    folds = [sorted(order[i::4]) for i in range(4)]
    rows, oof = [], {p: {} for p in protocols}
    for k, test in enumerate(folds):
        train = [d for d in datasets if d not in test]
        chosen = _pick(table, peer, "all candidates", "mean of both", train)
        for p in protocols:
            ours = table.loc[chosen, p]
            oof[p].update(ours[test].to_dict())
            row = {"fold": k + 1, "held-out datasets": ", ".join(test), "chosen": chosen,
                   "protocol": p, "ROC-AUC": ours[test].mean()}  # fmt: skip
            # the peer a user would pick from the same 24 datasets, and the fold's best
            for who, pool in (("peer", train), ("fold's best peer", test)):
                name, _, _ = _best_peer(peer, p, pool)
                have = [d for d in test if np.isfinite(peer.loc[name, (p, d)])]
                diff = ours[have].to_numpy() - peer.loc[name, p][have].to_numpy()
                record = f"{(diff > 0).sum()}-{(diff < 0).sum()}"
                row |= {
                    who: name,
                    f"{who} ROC-AUC": peer.loc[name, p][have].mean(),
                    f"margin vs {who}": diff.mean(),
                    f"wins-losses vs {who}": record,
                }
            rows.append(row)
    folds_df = pd.DataFrame(rows)
    print(folds_df.drop(columns="held-out datasets").round(4).to_markdown(index=False))
    print("\ncross-validated: each dataset scored by the configuration chosen without it,")
    print("against every peer on the datasets it finished (best peer first):")
    pooled = []
    for p in protocols:
        ours = pd.Series(oof[p])
        for name in peer.index:
            v = _versus(ours, peer.loc[name, p])
            pooled.append({"protocol": p, "peer": name, "datasets": v["datasets"],
                           "ours (CV)": v["ours"], "peer ROC-AUC": v["theirs"],
                           "margin": v["margin"], "wins": v["wins"],
                           "losses": v["losses"]})  # fmt: skip
    pooled = pd.DataFrame(pooled).sort_values(["protocol", "peer ROC-AUC"], ascending=[True, False])
    print(pooled.groupby("protocol").head(3).round(4).to_markdown(index=False))
    procs, nested_picks = nested(table, peer, folds)
    print("\nout of fold, per selection procedure (family / criterion); only the nested row")
    print("chose its procedure without the held-out folds:")
    print(procs.round(4).to_markdown(index=False))
    print(nested_picks.to_markdown(index=False))
    procs.to_csv(args.results / "default_cv_nested.csv", index=False)
    in_sample = pd.DataFrame({p: table[p].mean(axis=1) for p in protocols})
    in_sample["both"] = in_sample.mean(axis=1)
    top = in_sample.sort_values("both", ascending=False).head(args.top)
    print(f"\nin-sample over all {len(datasets)} datasets (the choice itself), top {args.top}:")
    print(top.round(4).to_markdown())
    folds_df.to_csv(args.results / "default_cv.csv", index=False)
    pooled.to_csv(args.results / "default_cv_peers.csv", index=False)
    if args.holdout:
        hold = evaluate(args.holdout, members)
        picks = list(dict.fromkeys([*folds_df.chosen, *top.index[:5], SHIPPED]))
        h = pd.DataFrame({p: hold[p].mean(axis=1) for p in protocols}).loc[picks]
        hp = peers(args.results / "holdout.csv")
        best = {p: hp[p].mean(axis=1).sort_values(ascending=False).head(3) for p in protocols}
        h = pd.concat([h, pd.DataFrame(best)])
        print("\nheld-out sets (benchmarks/holdout.py), never used to choose; the best peers last:")
        print(h.round(4).to_markdown())


def gate(args: argparse.Namespace) -> None:
    """A data-chosen switch between members, in-sample: its best threshold per feature.

    kNN fails under ``unsup`` where training anomalies form clusters (they become each
    other's neighbours) while the robust Gaussian still finds them far. Feature: the mean
    kNN percentile of the Gaussian's top ``q`` training rows (``knn|gauss top q``), or the
    converse; a low value says the members disagree on the tail. Where the feature is at or
    above the threshold the first of a pair is used, else the second. Every threshold at the
    5 %..95 % quantiles of the feature is tried on all datasets (in-sample: an upper bound).
    A switch per row is also measured: the largest of the members' normalised scores (PyOD's
    "maximization" combination) in place of their weighted sum.
    """
    import pandas as pd
    from scipy.stats import rankdata

    shipped = (("knnmean", "rgauss", "rgauss_all"), (1.0, 0.5, 0.5))
    rows = []
    for file in sorted(args.out.glob("*.npz")):
        protocol = file.stem.split("_", 1)[0]
        d = dict(np.load(file))
        if any(f"{m}_test" not in d for m in (*shipped[0], "iforest")):
            continue
        rk = rankdata(d["knnmean_train"]) / len(d["knnmean_train"])
        rg = rankdata(d["rgauss_train"]) / len(rk)
        ship = sum(w * _normalised(d[f"{m}_train"], d[f"{m}_test"], "zscore")
                   for m, w in zip(*shipped, strict=True))  # fmt: skip
        y = d["y_test"]
        row = {"protocol": protocol, "knn": _auc(y, d["knnmean_test"]),
               "gauss": _auc(y, d["rgauss_test"]), "shipped": _auc(y, ship)}  # fmt: skip
        for how in ("zscore", "robust", "rank"):
            z = [_normalised(d[f"{m}_train"], d[f"{m}_test"], how)
                 for m in ("knnmean", "rgauss", "iforest")]  # fmt: skip
            row[f"max(knn, gauss) [{how}]"] = _auc(y, np.maximum(z[0], z[1]))
            row[f"max(knn, gauss, iforest) [{how}]"] = _auc(y, np.maximum.reduce(z))
        for q in (0.01, 0.05):
            row[f"knn|gauss top {q:g}"] = rk[rg >= 1 - q].mean()
            row[f"gauss|knn top {q:g}"] = rg[rk >= 1 - q].mean()
        rows.append(row)
    t = pd.DataFrame(rows)
    feats = [c for c in t if "|" in c]
    print("feature medians per protocol (files: protocol x dataset x seed):")
    print(t.groupby("protocol")[feats].median().round(3).to_markdown())
    gain = t["gauss"] - t["knn"]
    print("\nSpearman correlation of each feature with the Gaussian's gain over kNN:")
    print(t[feats].corrwith(gain, method="spearman").round(3).to_markdown())
    out = []
    for feat in feats:
        for hi, lo in (("knn", "shipped"), ("knn", "gauss"), ("shipped", "gauss")):
            for tau in np.quantile(t[feat], np.linspace(0.05, 0.95, 19)):
                pick = t[hi].where(t[feat] >= tau, t[lo])
                out.append({"feature": feat, "pair": f"{hi} / {lo}", "threshold": tau,
                            **pick.groupby(t["protocol"]).mean()})  # fmt: skip
    best = pd.DataFrame(out)
    best["both"] = (best["clean"] + best["unsup"]) / 2
    best = best.loc[best.groupby(["feature", "pair"])["both"].idxmax()]
    print("\nbest threshold per feature and pair (mean of both protocols), in-sample:")
    print(best.round(4).to_markdown(index=False))
    fixed = t.groupby("protocol")[
        ["knn", "gauss", "shipped", *(c for c in t if "max(" in c)]
    ].mean()
    fixed["per-dataset oracle (knn or gauss)"] = (
        t[["knn", "gauss"]].max(axis=1).groupby(t["protocol"]).mean()
    )
    print("\nno switch, the per-row switch (max) and the best choice per file with the labels:")
    print(fixed.T.round(4).to_markdown())


def main() -> None:
    from anomalia.bench import default_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", nargs="+", choices=["unsup", "clean"], default=["unsup"])
    ap.add_argument("--members", nargs="*", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--data-dir", type=Path, default=default_data_dir())
    ap.add_argument("--out", type=Path, required=True, help="folder of the cached scores")
    ap.add_argument("--cv", action="store_true", help="choose by cross-validation")
    ap.add_argument("--gate", action="store_true", help="a data-chosen member switch")
    ap.add_argument("--holdout", type=Path, default=None, help="cached held-out scores")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--reuse", action="store_true", help="reuse the last --cv's ROC-AUCs")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gate(args) if args.gate else cv(args) if args.cv else score(args)


if __name__ == "__main__":
    main()
