"""text-ae: texts encoded as a short word sequence -- model, detector, ROUGE, CLI."""

from __future__ import annotations

import gzip
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

import anomalia
from anomalia import make_detector
from anomalia.cli.app import app
from anomalia.detectors.text import build_vocabulary, check_vocabulary, tokenize
from anomalia.errors import DataError, ModelFileError
from anomalia.io import read_table
from anomalia.text.summaries import lead_words, rouge_scores

from .conftest import FAST_PARAMS

runner = CliRunner()
TOPIC_A = ("python", "library", "parse", "json", "files", "fast", "small", "module", "data")
TOPIC_B = ("game", "levels", "players", "music", "sound", "space", "ship", "planet", "story")


def _texts(words, n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=10)) for _ in range(n)]


@pytest.fixture(scope="module")
def fitted():
    texts = _texts(TOPIC_A, 60, 0)
    summaries = _texts(TOPIC_A, 30, 1)
    det = make_detector("text-ae", **FAST_PARAMS["text-ae"]).fit(texts, summaries=summaries)
    return det, texts


def test_tokenize_and_vocabulary():
    assert tokenize("Python 3 bindings (C++), x86-64; don't.") == [
        "python", "3", "bindings", "c++", "x86-64", "don't",
    ]  # fmt: skip
    vocab = build_vocabulary([["b", "a", "b"], ["c", "a", "b"]], max_size=6, min_count=2)
    assert vocab == ["<pad>", "<unk>", "<bos>", "<eos>", "b", "a"]
    assert check_vocabulary(vocab) is vocab
    for bad in ([*vocab, "a"], ["a", *vocab], [*vocab, "two words"], "abc"):
        with pytest.raises(ModelFileError):
            check_vocabulary(bad)


def test_fit_scores_summaries_and_round_trip(fitted, tmp_path):
    det, _ = fitted
    assert det.vocabulary_[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert set(det.history_[0]) == {"reconstruction", "adversarial", "critic"}
    new = _texts(TOPIC_A, 5, 7) + _texts(TOPIC_B, 5, 8)
    scores = det.anomaly_score(new)
    assert scores.shape == (10,) and np.isfinite(scores).all()
    assert scores[5:].mean() > scores[:5].mean()  # unseen words are harder to rebuild
    summaries = det.summarize(new)
    assert len(summaries) == 10
    for text, summary in zip(new, summaries, strict=True):
        assert 0 < len(summary.split()) <= det.code_length
        assert set(summary.split()) <= set(text.split())  # copied from the text
    path = tmp_path / "t.anomalia"
    det.save(path)
    loaded = anomalia.load(path)
    np.testing.assert_array_equal(loaded.anomaly_score(new), scores)
    assert loaded.summarize(new) == summaries
    assert loaded.vocabulary_ == det.vocabulary_
    # a one-column DataFrame is the same input as a list of strings
    np.testing.assert_array_equal(det.anomaly_score(pd.DataFrame({"t": new})), scores)


def test_random_state_is_repeatable_and_the_critic_changes_the_model():
    texts = _texts(TOPIC_A, 40, 0)
    a = make_detector("text-ae", **FAST_PARAMS["text-ae"]).fit(texts, summaries=texts[:10])
    b = make_detector("text-ae", **FAST_PARAMS["text-ae"]).fit(texts, summaries=texts[:10])
    c = make_detector("text-ae", **FAST_PARAMS["text-ae"]).fit(texts)
    np.testing.assert_array_equal(a.anomaly_score(texts), b.anomaly_score(texts))
    assert a.summarize(texts) == b.summarize(texts)
    assert set(c.history_[0]) == {"reconstruction"}
    assert not np.array_equal(a.anomaly_score(texts), c.anomaly_score(texts))


def test_paired_summaries_come_from_other_rows_than_the_batch():
    det = make_detector("text-ae")
    det._summaries_of_X = True
    import torch

    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(50, generator=gen)
    for start in (0, 16, 48):
        batch = set(perm[start : start + 16].tolist())
        rows = det._real_rows(perm, start, len(batch), 50, gen)
        assert not batch & set(rows.tolist())
    with pytest.raises(DataError, match="summaries_of_X"):
        det.fit(["a b", "c d", "e f"], summaries=["a", "b"], summaries_of_X=True)


def test_tampered_vocabulary_is_a_model_file_error(fitted, tmp_path):
    det, _ = fitted
    path, bad = tmp_path / "t.anomalia", tmp_path / "bad.anomalia"
    det.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    for edit in (
        lambda v: [*v[:-1], v[4]],  # a repeated word
        lambda v: v[:-1],  # one word short of the network's embedding
        lambda v: ["<eos>", *v[1:]],  # the special tokens out of place
    ):
        manifest["attributes"]["vocabulary_"] = edit(det.vocabulary_)
        with zipfile.ZipFile(bad, "w") as zf:
            for name, blob in members.items():
                zf.writestr(name, json.dumps(manifest) if name == "manifest.json" else blob)
        with pytest.raises(ModelFileError):
            anomalia.load(bad)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[1.0], [2.0]]), "must hold texts"),
        (["a b", ""], "holds no words"),
        (["a b", "..."], "holds no words"),
        (pd.DataFrame({"a": ["x", "y"], "b": ["x", "y"]}), "one column"),
        ("just one string", "not one string"),
        (["only one"], "at least 2"),
    ],
)
def test_bad_input_is_a_data_error(X, match):
    with pytest.raises(DataError, match=match):
        make_detector("text-ae", **FAST_PARAMS["text-ae"]).fit(X)


def test_rouge_and_lead_words_on_hand_made_cases():
    same = rouge_scores(["fast json parser"], ["Fast JSON parser"])
    assert same == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})
    assert rouge_scores(["game"], ["json parser"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # "the cat sat" vs "the cat sat down": unigram P 3/3, R 3/4 -> F 6/7; bigram 2/2, 2/3 -> 0.8
    half = rouge_scores(["the cat sat", ""], ["the cat sat down", "x"])
    assert half["rouge1"] == pytest.approx(6 / 7 / 2)
    assert half["rouge2"] == pytest.approx(0.8 / 2)
    assert lead_words(["A fast JSON parser, in C.", "tiny"], 3) == ["A fast JSON", "tiny"]
    with pytest.raises(DataError):
        rouge_scores(["a"], ["a", "b"])
    with pytest.raises(DataError):
        lead_words(["a"], 0)


# -- the command line -------------------------------------------------------------------------
def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    """40 packages: a description, a summary, a section and a number, as .jsonl.gz."""
    folder = tmp_path_factory.mktemp("text")
    descriptions = _texts(TOPIC_A, 40, 3)
    rows = [
        {"package": f"p{i}", "summary": " ".join(d.split()[:4]), "description": d, "n": i}
        for i, d in enumerate(descriptions)
    ]
    path = folder / "d.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_cli_fit_summarize_score(jsonl, tmp_path):
    model, out, scores = tmp_path / "t.anomalia", tmp_path / "s.csv", tmp_path / "sc.csv"
    params = [x for k, v in FAST_PARAMS["text-ae"].items() for x in ("-p", f"{k}={v}")]
    res = run(
        "fit", "-d", "text-ae", jsonl, "--text-column", "description",
        "--summary-column", "summary", "--id-column", "package", *params, "-o", model,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "40 rows (a text each)" in res.output
    res = run("summarize", model, jsonl, "--out", out, "--reference-column", "summary")
    assert res.exit_code == 0, res.output
    assert "rouge1" in res.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["package", "summary", "reference"]
    assert len(frame) == 40 and frame["package"].iloc[0] == "p0"
    assert frame["summary"].tolist() == anomalia.load(model).summarize(
        pd.read_json(jsonl, lines=True)["description"]
    )
    res = run("score", model, jsonl, "--out", scores)
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(scores)) == 40


@pytest.mark.parametrize(
    ("column", "rows", "message"),
    [
        ("nope", None, "text column 'nope' not found"),
        ("n", None, "column 'n' is not text"),
        ("description", [{"description": "fine text"}, {"description": "  "}], "empty texts"),
        ("description", [{"description": "fine text"}, {"other": "x"}], "missing values"),
    ],
)
def test_cli_bad_text_input_is_one_line_and_exit_2(jsonl, tmp_path, column, rows, message):
    data = jsonl
    if rows is not None:
        data = tmp_path / "bad.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = tmp_path / "t.anomalia"
    res = run("fit", "-d", "text-ae", data, "--text-column", column, "-o", model)
    assert res.exit_code == 2
    assert message in res.output and res.output.count("error:") == 1
    assert not model.exists()


def test_cli_summarize_needs_a_text_model(tmp_path):
    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) ** 2})
    frame.to_csv(tmp_path / "x.csv", index=False)
    res = run("fit", tmp_path / "x.csv", "-d", "gaussian", "-o", tmp_path / "g.anomalia")
    assert res.exit_code == 0, res.output
    res = run("summarize", tmp_path / "g.anomalia", tmp_path / "x.csv", "-o", tmp_path / "s.csv")
    assert res.exit_code == 2 and "writes no summaries" in res.output
    assert not (tmp_path / "s.csv").exists()


def test_read_table_reads_json_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1, "b": 2.5}\n{"a": 3, "b": 4.0}\n')
    ds = read_table(path)
    assert list(ds.X.columns) == ["a", "b"] and ds.X.to_numpy().tolist() == [[1, 2.5], [3, 4.0]]
    text = tmp_path / "s.jsonl"
    text.write_text('{"s": "some words", "y": 0}\n{"s": "more words", "y": 1}\n')
    ds = read_table(text, text_column="s", label_column="y")
    assert ds.X["s"].tolist() == ["some words", "more words"] and ds.y.tolist() == [0, 1]
    assert ds.spec.feature_names == ["s"] and ds.spec.to_dict()["text_column"] == "s"


def test_fit_predict_and_threshold():
    texts = _texts(TOPIC_A, 30, 4)
    det = make_detector("text-ae", **FAST_PARAMS["text-ae"], contamination=0.1)
    labels = det.fit_predict(texts)
    assert set(labels) <= {-1, 1} and (labels == -1).sum() == 3
    assert det.predict(_texts(TOPIC_B, 4, 5)).shape == (4,)
