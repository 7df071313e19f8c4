"""Open-set recognition with the ``confidence`` detector: digits and MNIST, 0-5 known, 6-9 not.

    python benchmarks/open_set.py [--suite digits mnist] [--seeds 0 1 2] [--threads 1]

Prints one markdown table per suite. Protocols (labels of the known classes only in training):
  digits  sklearn's 8x8 digits; a stratified 70 % of the digits 0-5 trains, the other 30 %
          plus every 6-9 tests. Models: the built-in MLP on the 64 pixels, the same with
          temperature="auto", the built-in CNN on the 8x8 images, and LogisticRegression
          (msp and entropy only). Columns: accuracy on the known test rows and ROC-AUC of
          unknown (6-9) vs known test rows, mean over the seeds.
  mnist   the MNIST test set (../shared/datasets/mnist, 10,000 28x28 images), same split,
          with the CNN: ROC-AUC per score on 6-9; then outlier exposure with half of the 6s
          as known anomalies (X_outliers), and the ROC-AUC on 7-9 with and without it.
  nsl-kdd KDDTrain+_20Percent -> KDDTest+ (../shared/datasets/nsl-kdd): known classes normal
          + DoS / Probe / R2L / U2R, the MLP; threshold at 1 % false alarms on held-out
          training normals; accuracy, ROC-AUC and flagged share of the attack types unseen in
          training, false alarms on the test normals; iforest for context (see nsl_kdd()).
One network is fitted per model and seed; the scores are compared on it with
``set_params(score_method=...)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from anomalia import make_detector
from anomalia.datasets import data_dir, read_mnist, read_nsl_kdd

ROOT = Path(__file__).resolve().parents[1]
MNIST = data_dir() / "mnist"
NSL_KDD = data_dir() / "nsl-kdd"
RESULTS = ROOT / "benchmarks" / "results"
SCORES = ("msp", "entropy", "energy", "mahalanobis")
KNOWN = 6  # digits 0-5 are the known classes


def split(labels, seed, train_share=0.7):
    """Stratified train rows of the known digits; test rows = the other known + all unknown."""
    rng = np.random.default_rng(seed)
    train = []
    for digit in range(KNOWN):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        train.append(rows[: round(train_share * len(rows))])
    train = np.sort(np.concatenate(train))
    test = np.setdiff1d(np.arange(len(labels)), train)
    return train, test


def evaluate(det, X_test, y_test, unknown):
    """Accuracy on the known test rows and ROC-AUC of every score the detector supports."""
    known = ~unknown
    accuracy = float(
        np.mean(det.classes_[det.predict_proba(X_test[known]).argmax(1)] == y_test[known])
    )
    aucs = {}
    for score in SCORES if det.classifier is None else ("msp", "entropy"):
        aucs[score] = roc_auc_score(
            unknown, det.set_params(score_method=score).anomaly_score(X_test)
        )
    return accuracy, aucs


def digits(seeds):
    data = load_digits()
    X, images, y = data.data / 16, data.images[:, None] / 16, data.target
    models = {
        "MLP (64 pixels)": (X, {}),
        "MLP, temperature=auto": (X, {"temperature": "auto"}),
        "CNN (8x8 images)": (images, {}),
        "LogisticRegression": (X, {"classifier": LogisticRegression(max_iter=2000)}),
    }
    rows = []
    for seed in seeds:
        train, test = split(y, seed)
        unknown = y[test] >= KNOWN
        for model, (data_, params) in models.items():
            start = time.perf_counter()
            det = make_detector("confidence", random_state=seed, **params)
            det.fit(data_[train], y[train])
            fit_s = time.perf_counter() - start
            accuracy, aucs = evaluate(det, data_[test], y[test], unknown)
            rows.append(
                {"model": model, "seed": seed, "accuracy": accuracy, **aucs, "fit_s": fit_s}
            )
            shown = " ".join(f"{k} {v:.3f}" for k, v in aucs.items())
            print(
                f"  seed {seed} {model:>22}: accuracy {accuracy:.3f} {shown} ({fit_s:.1f}s)",
                flush=True,
            )
    df = pd.DataFrame(rows)
    table = df.groupby("model", sort=False)[["accuracy", *SCORES, "fit_s"]].mean()
    print(f"\nROC-AUC of unknown digits 6-9 vs known 0-5, mean over seeds {list(seeds)}\n")
    print(table.to_markdown(floatfmt=".3f"), flush=True)


def mnist(seeds):
    images, y = read_mnist(MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz")
    images = images[:, None] / 255.0
    rows = []
    for seed in seeds:
        train, test = split(y, seed)
        # half of the 6s become known anomalies for outlier exposure; they leave the test set
        sixes = np.random.default_rng(seed).permutation(np.flatnonzero(y == 6))
        exposed = np.sort(sixes[: len(sixes) // 2])
        test = np.setdiff1d(test, exposed)
        unknown = y[test] >= KNOWN
        later = y[test] != 6  # test rows of 0-5 and 7-9: the digits never exposed
        for label, kwargs in (("plain", {}), ("OE on 6", {"X_outliers": images[exposed]})):
            start = time.perf_counter()
            det = make_detector("confidence", random_state=seed)
            det.fit(images[train], y[train], **kwargs)
            fit_s = time.perf_counter() - start
            accuracy, aucs = evaluate(det, images[test], y[test], unknown)
            _, aucs_79 = evaluate(det, images[test][later], y[test][later], unknown[later])
            for score in SCORES:
                rows.append(
                    {
                        "seed": seed,
                        "training": label,
                        "score": score,
                        "accuracy": accuracy,
                        "auc 6-9": aucs[score],
                        "auc 7-9": aucs_79[score],
                        "fit_s": fit_s,
                        "epochs": det.n_epochs_,
                    }
                )
            print(
                f"  seed {seed} {label}: accuracy {accuracy:.3f}, {det.n_epochs_} epochs, "
                f"{fit_s:.0f}s; 7-9: " + " ".join(f"{k} {v:.3f}" for k, v in aucs_79.items()),
                flush=True,
            )
    df = pd.DataFrame(rows)
    mean = df.groupby(["training", "score"], sort=False)[["auc 6-9", "auc 7-9"]].mean()
    table = mean.loc["plain"].copy()
    table["auc 7-9, OE on 6"] = mean.loc["OE on 6"]["auc 7-9"]
    table["gain on 7-9"] = table["auc 7-9, OE on 6"] - table["auc 7-9"]
    acc = df.groupby("training")["accuracy"].mean()
    print(
        f"\nMNIST, CNN, mean over seeds {list(seeds)}; known-class accuracy: plain "
        f"{acc['plain']:.3f}, OE {acc['OE on 6']:.3f}\n"
    )
    print(table.to_markdown(floatfmt=".3f"), flush=True)


# --------------------------------------------------------------------------- NSL-KDD

#: The standard NSL-KDD / KDD Cup 99 attack taxonomy (attack name -> family), covering the
#: names of both KDDTrain+ and KDDTest+ (Tavallaee et al. 2009; the DARPA 1998/99 lists).
_FAMILY_NAMES = {
    "DoS": ("apache2", "back", "land", "mailbomb", "neptune", "pod", "processtable", "smurf",
            "teardrop", "udpstorm"),
    "Probe": ("ipsweep", "mscan", "nmap", "portsweep", "saint", "satan"),
    "R2L": ("ftp_write", "guess_passwd", "httptunnel", "imap", "multihop", "named", "phf",
            "sendmail", "snmpgetattack", "snmpguess", "spy", "warezclient", "warezmaster",
            "worm", "xlock", "xsnoop"),
    "U2R": ("buffer_overflow", "loadmodule", "perl", "ps", "rootkit", "sqlattack", "xterm"),
}  # fmt: skip
NSL_KDD_FAMILIES = {name: family for family, names in _FAMILY_NAMES.items() for name in names}
#: Heavy-tailed (seconds, bytes: up to 4e8) columns put through log1p before the detector
#: standardises them, the usual NSL-KDD preprocessing; without it a handful of huge
#: transfers set the scale of the standardised column.
NSL_KDD_LOG_COLUMNS = ("duration", "src_bytes", "dst_bytes")
FALSE_ALARM_RATE = 0.01  # target share of normal traffic flagged


def nsl_kdd_family(labels):
    """Traffic class of each row: "normal" or the attack family (DoS, Probe, R2L, U2R)."""
    return np.array([lab if lab == "normal" else NSL_KDD_FAMILIES[lab] for lab in labels])


def nsl_kdd_features(X):
    """The reader's 119 columns with :data:`NSL_KDD_LOG_COLUMNS` replaced by their log1p."""
    X = X.copy()
    for col in NSL_KDD_LOG_COLUMNS:
        X[col] = np.log1p(X[col])
    return X.to_numpy(np.float64)


def nsl_kdd(seeds, dev_share=0.2):
    """NSL-KDD open-set recognition: known traffic classes from the training file.

        python benchmarks/open_set.py --suite nsl-kdd --seeds 0 1 2 3 4

    Known classes are the traffic classes of KDDTrain+_20Percent: "normal" and the four
    attack families (DoS, Probe, R2L, U2R; :data:`NSL_KDD_FAMILIES`). A stratified
    ``dev_share`` of the training rows is held out; ``confidence`` (built-in MLP, default
    parameters) is fitted on the rest with the family labels, and for each score the
    threshold is the 99th percentile of the score on the held-out training normals (1 %
    false alarms on normal traffic; the test file plays no part). On KDDTest+ "known" rows
    are normal traffic and attacks whose names occur in the training file; "unseen" rows are
    the attack names absent from it (mscan, apache2, processtable, snmpguess, ...).
    Columns: accuracy of ``predict_class`` on the known test rows (a rejected row counts
    as wrong; "closed-set" is the argmax of ``predict_proba`` without rejection), ROC-AUC of
    unseen attacks vs normal test traffic, the false-alarm rate observed on normal test
    traffic, and the unseen-attack rows flagged as unknown (count and share). "unseen
    flagged or attack" also counts unseen rows the classifier assigns to an attack family,
    "normal alarms or attack" likewise normal rows (what an operator would see as alerts).
    For context, ``iforest`` fitted on the training normals only, with the same features,
    split and threshold rule. The features are the reader's 119 columns with
    :data:`NSL_KDD_LOG_COLUMNS` log1p-transformed. One network per seed; scores are compared
    on it with ``set_params(score_method=...)``. Rows are written to
    ``benchmarks/results/open_set_nslkdd.csv``.
    """
    train = read_nsl_kdd(NSL_KDD / "KDDTrain+_20Percent.txt")
    test = read_nsl_kdd(NSL_KDD / "KDDTest+.txt")
    X_all, X_test = nsl_kdd_features(train.X), nsl_kdd_features(test.X)
    family_all, family_test = nsl_kdd_family(train.labels), nsl_kdd_family(test.labels)
    seen_names = set(train.labels)
    unseen = ~np.isin(test.labels, list(seen_names))
    normal = test.labels == "normal"
    known = ~unseen
    counts = pd.Series(family_all).value_counts().sort_index().to_dict()
    print(
        f"  train {len(X_all)} rows {counts}; "
        f"test {len(X_test)}: {known.sum()} known ({normal.sum()} normal), {unseen.sum()} "
        f"unseen-attack rows of {len(set(test.labels[unseen]))} names",
        flush=True,
    )
    auc_rows = np.flatnonzero(unseen | normal)

    def detection(scores_dev_normal, scores_test):
        threshold = float(np.quantile(scores_dev_normal, 1.0 - FALSE_ALARM_RATE))
        flagged = scores_test > threshold  # the rule of BaseDetector.predict
        return (
            threshold,
            flagged,
            {
                "auc unseen vs normal": roc_auc_score(unseen[auc_rows], scores_test[auc_rows]),
                "dev normal FAR": float(np.mean(scores_dev_normal > threshold)),
                "test normal FAR": float(np.mean(flagged[normal])),
                "unseen flagged": int(flagged[unseen].sum()),
                "unseen flagged share": float(np.mean(flagged[unseen])),
            },
        )

    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        dev = np.concatenate(
            [
                (r := rng.permutation(np.flatnonzero(family_all == fam)))[
                    : round(dev_share * len(r))
                ]
                for fam in np.unique(family_all)
            ]
        )
        fit = np.setdiff1d(np.arange(len(X_all)), dev)
        dev_normal = dev[family_all[dev] == "normal"]

        start = time.perf_counter()
        det = make_detector("confidence", random_state=seed)
        det.fit(X_all[fit], family_all[fit])
        fit_s = time.perf_counter() - start
        proba_class = det.classes_[det.predict_proba(X_test).argmax(1)]
        closed = float(np.mean(proba_class[known] == family_test[known]))
        for score in SCORES:
            det.set_params(score_method=score)
            threshold, flagged, stats = detection(
                det.anomaly_score(X_all[dev_normal]), det.anomaly_score(X_test)
            )
            det.threshold_ = threshold
            predicted = det.predict_class(X_test)
            assert np.array_equal(predicted == -1, flagged)
            alert = flagged | (proba_class != "normal")
            rows.append(
                {
                    "seed": seed,
                    "detector": "confidence",
                    "score": score,
                    "accuracy known": float(np.mean(predicted[known] == family_test[known])),
                    "closed-set accuracy": closed,
                    **stats,
                    "unseen flagged or attack": float(np.mean(alert[unseen])),
                    "normal alarms or attack": float(np.mean(alert[normal])),
                    "threshold": threshold,
                    "fit_s": fit_s,
                    "epochs": det.n_epochs_,
                }
            )
        print(
            f"  seed {seed} confidence: closed-set accuracy {closed:.3f}, {det.n_epochs_} "
            f"epochs, {fit_s:.0f}s; "
            + " ".join(
                f"{r['score']} auc {r['auc unseen vs normal']:.3f}/FAR "
                f"{r['test normal FAR']:.3f}/flag {r['unseen flagged share']:.3f}"
                for r in rows[-len(SCORES) :]
            ),
            flush=True,
        )

        start = time.perf_counter()
        forest = make_detector("iforest", random_state=seed)
        forest.fit(X_all[fit][family_all[fit] == "normal"])
        fit_s = time.perf_counter() - start
        threshold, flagged, stats = detection(
            forest.anomaly_score(X_all[dev_normal]), forest.anomaly_score(X_test)
        )
        rows.append(
            {
                "seed": seed,
                "detector": "iforest (normals only)",
                "score": "iforest",
                **stats,
                "threshold": threshold,
                "fit_s": fit_s,
            }
        )
        print(
            f"  seed {seed} iforest: auc {stats['auc unseen vs normal']:.3f}, FAR "
            f"{stats['test normal FAR']:.3f}, flagged {stats['unseen flagged share']:.3f} "
            f"({fit_s:.1f}s)",
            flush=True,
        )

    df = pd.DataFrame(rows)
    columns = [
        "accuracy known",
        "closed-set accuracy",
        "auc unseen vs normal",
        "dev normal FAR",
        "test normal FAR",
        "unseen flagged",
        "unseen flagged share",
        "unseen flagged or attack",
        "normal alarms or attack",
    ]
    table = df.groupby(["detector", "score"], sort=False)[columns].mean()
    table.index = [f"{d}, {sc}" if d == "confidence" else d for d, sc in table.index]
    table["unseen flagged"] = table["unseen flagged"].round().astype(int).astype(str) + (
        f" / {unseen.sum()}"
    )
    print(
        f"\nNSL-KDD: KDDTrain+_20Percent -> KDDTest+, threshold at "
        f"{FALSE_ALARM_RATE:.0%} false alarms on held-out training normals; mean over seeds "
        f"{list(seeds)}\n"
    )
    print(table.to_markdown(floatfmt=".3f"), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)  # only now: the run and its table completed
    df.to_csv(RESULTS / "open_set_nslkdd.csv", index=False, float_format="%.6g")


SUITES = {"digits": digits, "mnist": mnist, "nsl-kdd": nsl_kdd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", nargs="+", default=list(SUITES), choices=list(SUITES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for suite in args.suite:
        print(f"## {suite}", flush=True)
        start = time.perf_counter()
        SUITES[suite](args.seeds)
        print(f"\n{suite}: {time.perf_counter() - start:.0f}s in all\n", flush=True)


if __name__ == "__main__":
    main()
