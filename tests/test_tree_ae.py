"""tree-ae: the grammar with gold trees, trees from distances, bracketing F1, text files, the
detector (fit, score, parse, save/load, bad input) and the CLI chain fit -> parse."""

from __future__ import annotations

import gzip
import json
import math
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from anomalia import make_detector
from anomalia.cli.app import app
from anomalia.errors import DataError, ModelFileError
from anomalia.persistence import load
from anomalia.text import (
    bracket_f1,
    bracketed,
    generate,
    left_branching,
    mean_bracket_f1,
    plot_trees,
    random_tree,
    read_texts,
    right_branching,
    spans,
    tokenize,
    tree_from_distances,
)

runner = CliRunner()
TINY = {"embed_dim": 8, "hidden": 16, "code_dim": 16, "epochs": 2, "batch_size": 16}


# -- the grammar -------------------------------------------------------------------------------
def test_grammar_is_seeded_and_its_trees_cover_the_words():
    a, b = generate(30, random_state=3), generate(30, random_state=3)
    assert a == b
    assert [s.words for s in generate(30, random_state=4)] != [s.words for s in a]
    for s in a:
        assert 3 <= len(s.words) <= 16
        assert bracketed(s.tree, s.words).replace("(", "").replace(")", "").split() == list(s.words)


def test_grammar_is_not_right_branching():
    ss = generate(300, random_state=0)
    rb = mean_bracket_f1([right_branching(len(s.words)) for s in ss], [s.tree for s in ss])
    assert 0.3 < rb < 0.6  # right-branching is a baseline, not the answer


def test_generate_refuses_bad_lengths():
    with pytest.raises(ValueError, match="min_words"):
        generate(3, min_words=5, max_words=4)


# -- trees ------------------------------------------------------------------------------------
def test_tree_from_distances_splits_at_the_largest_distance():
    assert tree_from_distances([0.1, 2.0, 0.5]) == ((0, 1), (2, 3))
    assert tree_from_distances([1.0, 2.0, 3.0]) == left_branching(4)
    assert tree_from_distances([3.0, 2.0, 1.0]) == right_branching(4)
    assert tree_from_distances([]) == 0
    assert tree_from_distances([1.0, 1.0]) == (0, (1, 2))  # ties: leftmost gap
    with pytest.raises(DataError, match="finite"):
        tree_from_distances([1.0, np.nan])


def test_bracket_f1_on_hand_made_trees():
    rb, lb, balanced = right_branching(4), left_branching(4), ((0, 1), (2, 3))
    assert spans(rb) == {(1, 4), (2, 4)}
    assert bracket_f1(rb, rb) == 1.0
    assert bracket_f1(rb, lb) == 0.0  # {(1,4),(2,4)} vs {(0,2),(0,3)}
    assert bracket_f1(balanced, rb) == 0.5  # one of two spans shared
    assert math.isnan(bracket_f1((0, 1), (0, 1)))  # no span but the sentence
    five = ((0, (1, 2)), (3, 4))  # {(0,3),(1,3),(3,5)} vs right-branching {(1,5),(2,5),(3,5)}
    assert bracket_f1(five, right_branching(5)) == pytest.approx(1 / 3)
    assert mean_bracket_f1([rb, (0, 1)], [lb, (0, 1)]) == 0.0  # the 2-word one left out
    with pytest.raises(DataError, match="different numbers of words"):
        bracket_f1(rb, right_branching(5))
    with pytest.raises(DataError, match="3 words"):
        mean_bracket_f1([(0, 1)], [(0, 1)])


def test_random_trees_are_valid_and_seeded():
    t = random_tree(7, np.random.default_rng(0))
    assert t == random_tree(7, np.random.default_rng(0))
    assert len(spans(t)) == 5  # a binary tree over 7 words: 6 inner nodes, root excluded


def test_bracketed_writes_and_escapes():
    words = ["the", "cat", "sat", "on", "the", "mat"]
    tree = tree_from_distances([0, 5, 3, 2, 0])
    assert bracketed(tree, words) == "((the cat) (sat (on (the mat))))"
    assert bracketed((0, 1), ["(a", "b)"]) == "(-LRB-a b-RRB-)"
    with pytest.raises(DataError, match="cover"):
        bracketed((0, 1), ["a", "b", "c"])


def test_plot_trees_draws_one_panel_per_tree():
    fig = plot_trees([right_branching(3), (0, 1)], [["a", "b", "c"], ["d", "e"]], titles=["x", "y"])
    assert len(fig.axes) == 2
    with pytest.raises(DataError, match="one word list per tree"):
        plot_trees([(0, 1)], [])
    with pytest.raises(DataError, match="tree 0 does not cover"):
        plot_trees([(0, 1)], [["a"]])


# -- reading texts ------------------------------------------------------------------------------
def test_read_texts_of_each_kind(tmp_path):
    (tmp_path / "t.txt").write_text("first text\n\nsecond one\n")
    assert read_texts(tmp_path / "t.txt") == ["first text", "second one"]
    (tmp_path / "h.txt").write_text("summary\nfirst text\n")
    assert read_texts(tmp_path / "h.txt", "summary") == ["first text"]
    (tmp_path / "t.csv").write_text("id,summary\n1,hello world\n2,bye\n")
    assert read_texts(tmp_path / "t.csv", "summary") == ["hello world", "bye"]
    with gzip.open(tmp_path / "t.jsonl.gz", "wt") as f:
        f.write(json.dumps({"summary": "a b"}) + "\n" + json.dumps({"summary": "c"}) + "\n")
    assert read_texts(tmp_path / "t.jsonl.gz", "summary") == ["a b", "c"]
    assert tokenize("GNU C library: shared (C++)") == [
        "gnu", "c", "library", ":", "shared", "(", "c++", ")",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "column", "message"),
    [
        ("t.csv", "a,b\n1,2\n", "summary", "has no column 'summary'"),
        ("t.csv", "a,b\n1,2\n", None, "--text-column"),
        ("t.csv", 'summary\nx\n\n""\n', "summary", "row 2 of column 'summary' holds no text"),
        ("t.txt", "x\n", "summary", "its first line is 'x', not 'summary'"),
        ("t.txt", "\n\n", None, "holds no text"),
        ("t.parquet", "x", "summary", "texts are read from"),
    ],
)
def test_read_texts_refuses_bad_files(tmp_path, name, content, column, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_texts(tmp_path / name, column)


def test_read_texts_refuses_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_texts(tmp_path / "none.txt")


# -- the detector ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def texts():
    return [s.text for s in generate(120, max_words=10, random_state=0)]


@pytest.fixture(scope="module")
def fitted(texts):
    return make_detector("tree-ae", **TINY, random_state=0).fit(texts)


def test_fit_score_parse(fitted, texts):
    scores = fitted.anomaly_score(texts[:5])
    assert scores.shape == (5,) and np.isfinite(scores).all() and (scores > 0).all()
    assert fitted.n_features_in_ == 1 and fitted.n_epochs_ == 2
    assert fitted.history_["train_loss"][1] < fitted.history_["train_loss"][0]
    accuracy = fitted.token_accuracy(texts[:5])
    assert accuracy.shape == (5,) and ((accuracy >= 0) & (accuracy <= 1)).all()
    trees = fitted.parse(texts[:5])
    for line, text in zip(trees, texts[:5], strict=True):
        assert line.replace("(", "").replace(")", "").split() == text.split()
        assert line.count("(") == len(text.split()) - 1  # binary: n - 1 inner nodes
    # an unknown word and a long text (cut to max_words) still parse and score
    long = " ".join(["dog"] * 40)
    assert fitted.parse(["zebra dog"]) == ["(zebra dog)"]
    assert fitted.parse([long])[0].count("dog") == fitted.max_words
    assert np.isfinite(fitted.anomaly_score(["zebra", long])).all()


def test_same_seed_same_model(fitted, texts):
    again = make_detector("tree-ae", **TINY, random_state=0).fit(texts)
    np.testing.assert_array_equal(again.anomaly_score(texts[:8]), fitted.anomaly_score(texts[:8]))
    other = make_detector("tree-ae", **TINY, random_state=1).fit(texts)
    assert not np.array_equal(other.anomaly_score(texts[:8]), fitted.anomaly_score(texts[:8]))


def test_save_and_load_round_trip(fitted, texts, tmp_path):
    path = tmp_path / "tree.anomalia"
    fitted.save(path)
    back = load(path)
    np.testing.assert_array_equal(back.anomaly_score(texts[:8]), fitted.anomaly_score(texts[:8]))
    assert back.parse(texts[:8]) == fitted.parse(texts[:8])
    assert back.vocabulary_ == fitted.vocabulary_


def test_a_tampered_vocabulary_is_refused(fitted, tmp_path):
    path, bad = tmp_path / "tree.anomalia", tmp_path / "bad.anomalia"
    fitted.save(path)
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "manifest.json":
                manifest = json.loads(data)
                manifest["attributes"]["vocabulary_"] = ["dog", "dog"]
                data = json.dumps(manifest).encode()
            zout.writestr(item, data)
    with pytest.raises(ModelFileError, match="vocabulary_"):
        load(bad)


def test_the_flat_baseline_scores_but_does_not_parse(texts):
    flat = make_detector("tree-ae", **TINY, flat=True, random_state=0).fit(texts)
    assert np.isfinite(flat.anomaly_score(texts[:3])).all()
    with pytest.raises(DataError, match="no tree"):
        flat.parse(texts[:3])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("one string", "not one string"),
        (["a dog", None], "row 1 holds no text"),
        (["a dog", "  ...  "], None),  # punctuation marks are words
        (["a dog", "   "], "row 1 holds no word"),
        (np.array([["a", "b"], ["c", "d"]]), "one text per row"),
    ],
)
def test_bad_input_is_refused(fitted, bad, message):
    if message is None:
        assert fitted.anomaly_score(bad).shape == (2,)
        return
    with pytest.raises(DataError, match=message):
        fitted.anomaly_score(bad)


def test_bad_parameters_are_refused(texts):
    with pytest.raises(ValueError, match="word_dropout"):
        make_detector("tree-ae", word_dropout=1.0).fit(texts)
    with pytest.raises(DataError, match="at least 2 texts"):
        make_detector("tree-ae", **TINY).fit(["one text"])


# -- the CLI ------------------------------------------------------------------------------------
def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_fit_then_parse(tmp_path, texts):
    data = tmp_path / "summaries.jsonl"
    data.write_text(
        "".join(json.dumps({"id": i, "summary": t}) + "\n" for i, t in enumerate(texts))
    )
    model = tmp_path / "tree.anomalia"
    params = [a for k, v in TINY.items() for a in ("-p", f"{k}={v}")]
    res = run(
        "fit", "--detector", "tree-ae", data, "--text-column", "summary", "--out", model, *params
    )
    assert res.exit_code == 0, res.output
    assert "fitted tree-ae on 120 texts" in res.output
    out, png = tmp_path / "trees.txt", tmp_path / "trees.png"
    res = run("parse", model, data, "--out", out, "--plot", png, "--n-plot", 2)
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == len(texts)
    assert lines[0].replace("(", "").replace(")", "").split() == texts[0].split()
    assert png.read_bytes()[:4] == b"\x89PNG"
    # a .txt file: one text per line, no column
    txt = tmp_path / "more.txt"
    txt.write_text("the dog saw a cat\nalice slept\n")
    res = run("parse", model, txt, "--out", tmp_path / "more-trees.txt")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "more-trees.txt").read_text().splitlines()[1] == "(alice slept)"
    txt.write_text("summary\nalice slept\n")  # a header naming the model's text column
    res = run("parse", model, txt, "--out", tmp_path / "more-trees.txt")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "more-trees.txt").read_text() == "(alice slept)\n"


def test_cli_errors_write_nothing(tmp_path, fitted):
    model = tmp_path / "tree.anomalia"
    fitted.save(model)
    data = tmp_path / "d.csv"
    data.write_text("summary\nthe dog\n")
    out = tmp_path / "trees.txt"
    res = run("parse", model, data, "--text-column", "nope", "--out", out)
    assert res.exit_code == 2 and "has no column 'nope'" in res.output
    res = run("parse", model, data, "--text-column", "summary", "--out", out, "--plot", "x.jpg")
    assert res.exit_code == 2 and "--plot must end in .png" in res.output
    res = run("fit", "-d", "tree-ae", data, "--out", tmp_path / "m.anomalia")
    assert res.exit_code == 2 and "--text-column" in res.output
    assert not out.exists() and not (tmp_path / "m.anomalia").exists()
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n3,4\n5,7\n")
    res = run("fit", "-d", "gaussian", table, "--out", tmp_path / "g.anomalia")
    assert res.exit_code == 0, res.output
    res = run("parse", tmp_path / "g.anomalia", data, "--text-column", "summary", "--out", out)
    assert res.exit_code == 2 and "needs a tree-ae model" in res.output
    assert not out.exists()
