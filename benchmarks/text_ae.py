"""Text as the code: text-ae's summaries (ROUGE) and its anomaly scores (one-vs-rest ROC-AUC).

    OMP_NUM_THREADS=1 python benchmarks/text_ae.py [--train 1000] [--epochs 3] [--per-section 400]

Data: the 61,463 Debian package descriptions of ../shared/datasets/debian-descriptions,
shuffled with seed 0. Subsampled so that the whole run takes about 8 minutes on one thread
of a shared machine; descriptions are cut to their first 24 words (``max_length=24``), the
other parameters are text-ae's defaults.

Part 1, summaries. 300 held-out packages are the test set; ``--train`` other packages'
descriptions train text-ae twice, with the critic (it sees the summaries of 3,000 further
packages, never those of the training or test packages) and without it; the generated
8-word codes of the test descriptions are scored by ROUGE-1/2/L F against each test
package's real summary, beside the lead-k baselines (the description's first k words).

Part 2, detection. For each of the 10 largest sections: ``--per-section`` descriptions of
that section train the detector; the test set is 150 other descriptions of the section
(normal) and 150 from the other sections (anomalies). text-ae (without critic: the critic
shapes the summaries, not the reconstruction) against TF-IDF (scikit-learn, 2,000 terms,
fitted on the training texts) + ``knn`` and + ``iforest``.

Writes ``benchmarks/results/text_ae_rouge.csv``, ``text_ae_examples.csv`` and
``text_ae_detection.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from anomalia import make_detector
from anomalia.datasets import data_dir
from anomalia.text.summaries import lead_words, rouge_scores

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = data_dir() / "debian-descriptions" / "descriptions.jsonl.gz"
N_TEST, N_CRITIC, N_SECTIONS, N_EVAL = 300, 3000, 10, 150


def text_ae(epochs: int, **extra: object) -> object:
    return make_detector("text-ae", max_length=24, epochs=epochs, random_state=0, **extra)


def part_summaries(df: pd.DataFrame, n_train: int, epochs: int) -> None:
    order = np.random.default_rng(0).permutation(len(df))
    test = df.iloc[order[:N_TEST]]
    train = df.iloc[order[N_TEST : N_TEST + n_train]]
    critic = df.iloc[order[N_TEST + n_train : N_TEST + n_train + N_CRITIC]]
    refs = test["summary"].tolist()
    rows, generated = [], {}
    for name, summaries in (("text-ae, critic", critic["summary"]), ("text-ae, no critic", None)):
        t0 = time.perf_counter()
        det = text_ae(epochs).fit(train["description"], summaries=summaries)
        generated[name] = det.summarize(test["description"])
        words = np.mean([len(s.split()) for s in generated[name]])
        seconds = time.perf_counter() - t0
        scores = rouge_scores(generated[name], refs)
        rows.append({"method": name, **scores, "mean words": words, "fit s": seconds})
    for k in (4, 8):
        lead = lead_words(test["description"].tolist(), k)
        rows.append({"method": f"lead-{k} words", **rouge_scores(lead, refs), "mean words": k})
    table = pd.DataFrame(rows)
    table.to_csv(RESULTS / "text_ae_rouge.csv", index=False)
    print(f"\nROUGE F of {N_TEST} held-out packages' codes against their real summaries\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    examples = pd.DataFrame(
        {
            "package": test["package"].to_numpy(),
            "description starts": lead_words(test["description"].tolist(), 12),
            "real summary": refs,
            "with critic": generated["text-ae, critic"],
            "without critic": generated["text-ae, no critic"],
        }
    )
    examples.to_csv(RESULTS / "text_ae_examples.csv", index=False)
    print("\n" + examples.head(6).to_markdown(index=False))


def part_detection(df: pd.DataFrame, per_section: int, epochs: int) -> None:
    rng = np.random.default_rng(0)
    sections = df["section"].value_counts().index[:N_SECTIONS]
    rows = []
    for section in sections:
        own = df.index[df["section"] == section].to_numpy()
        other = df.index[df["section"] != section].to_numpy()
        own = rng.permutation(own)
        train = df.loc[own[:per_section], "description"]
        normal = df.loc[own[per_section : per_section + N_EVAL], "description"]
        odd = df.loc[rng.choice(other, N_EVAL, replace=False), "description"]
        test = pd.concat([normal, odd])
        y = np.r_[np.zeros(len(normal)), np.ones(len(odd))]
        t0 = time.perf_counter()
        det = text_ae(epochs).fit(train)
        row = {"section": section, "text-ae": roc_auc_score(y, det.anomaly_score(test))}
        seconds = time.perf_counter() - t0
        tfidf = TfidfVectorizer(max_features=2000, sublinear_tf=True).fit(train)
        X_train, X_test = tfidf.transform(train).toarray(), tfidf.transform(test).toarray()
        for name in ("knn", "iforest"):
            params = {"random_state": 0} if name == "iforest" else {}
            base = make_detector(name, **params).fit(X_train)
            row[f"tf-idf + {name}"] = roc_auc_score(y, base.anomaly_score(X_test))
        rows.append({**row, "text-ae fit s": seconds})
        print(f"{section}: {row}", flush=True)
    table = pd.DataFrame(rows)
    mean = table.drop(columns="section").mean().to_dict()
    table = pd.concat([table, pd.DataFrame([{"section": "mean", **mean}])], ignore_index=True)
    table.to_csv(RESULTS / "text_ae_detection.csv", index=False)
    print(
        f"\nROC-AUC, one section normal ({per_section} training texts), "
        f"{N_EVAL} + {N_EVAL} test texts\n"
    )
    print(table.to_markdown(index=False, floatfmt=".3f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000, help="training texts, part 1")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-section", type=int, default=400, help="training texts, part 2")
    parser.add_argument("--part", choices=("all", "summaries", "detection"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df = pd.read_json(DATA, lines=True, dtype=False)
    t0 = time.perf_counter()
    with threadpool_limits(1):
        if args.part in ("all", "summaries"):
            part_summaries(df, args.train, args.epochs)
        if args.part in ("all", "detection"):
            part_detection(df, args.per_section, args.epochs)
    print(f"\n{time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
