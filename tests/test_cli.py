"""Every CLI command end to end through Typer's runner, and the bad-input list."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import anomalia
from anomalia.cli.app import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def tables(tmp_path):
    """train.csv (normals + a few labelled anomalies), dev.csv and test.csv with ids."""
    rng = np.random.default_rng(0)

    def make(n_normal, n_anom, start):
        X = np.vstack([rng.normal(size=(n_normal, 3)), rng.normal(6, 1, size=(n_anom, 3))])
        df = pd.DataFrame(X, columns=["amount", "age", "hour"])
        df.insert(0, "txn", np.arange(start, start + len(df)))
        df["fraud"] = np.r_[np.zeros(n_normal, int), np.ones(n_anom, int)]
        return df

    paths = {}
    for name, (n, a, s) in {
        "train": (200, 5, 0),
        "dev": (60, 10, 1000),
        "test": (60, 10, 2000),
    }.items():
        paths[name] = tmp_path / f"{name}.csv"
        make(n, a, s).to_csv(paths[name], index=False)
    return paths


@pytest.fixture
def model(tmp_path, tables):
    path = tmp_path / "model.anomalia"
    res = run(
        "fit",
        tables["train"],
        "--detector",
        "gaussian",
        "--label-column",
        "fraud",
        "--id-column",
        "txn",
        "--out",
        path,
    )
    assert res.exit_code == 0, res.output
    return path


def test_fit_uses_only_normal_rows_unless_polluted(tmp_path, tables, model):
    det = anomalia.load(model)
    assert list(det.feature_names_in_) == ["amount", "age", "hour"]
    assert (
        "200 rows"
        in run(
            "fit",
            tables["train"],
            "--label-column",
            "fraud",
            "--id-column",
            "txn",
            "--out",
            tmp_path / "m2",
        ).output
    )
    res = run(
        "fit",
        tables["train"],
        "--label-column",
        "fraud",
        "--id-column",
        "txn",
        "--polluted",
        "--contamination",
        "0.03",
        "--out",
        tmp_path / "m3",
    )
    assert res.exit_code == 0 and "205 rows" in res.output


def test_fit_with_params_and_seed_is_repeatable(tmp_path, tables):
    outs = []
    for i in range(2):
        path = tmp_path / f"m{i}"
        res = run(
            "fit",
            tables["train"],
            "-d",
            "iforest",
            "-p",
            "n_estimators=20",
            "--label-column",
            "fraud",
            "--id-column",
            "txn",
            "--out",
            path,
        )
        assert res.exit_code == 0, res.output
        outs.append(anomalia.load(path))
    assert outs[0].n_estimators == 20
    X = pd.read_csv(tables["test"])[["amount", "age", "hour"]]
    np.testing.assert_array_equal(outs[0].anomaly_score(X), outs[1].anomaly_score(X))


def test_score_writes_ids_scores_and_flags(tmp_path, tables, model):
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"scores{suffix}"
        res = run("score", model, tables["test"], "--out", out)
        assert res.exit_code == 0, res.output
        df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        assert list(df.columns) == ["txn", "anomaly_score", "is_anomaly"]
        assert df.txn.tolist() == list(range(2000, 2070))
        assert df.is_anomaly.iloc[-10:].all()


def test_calibrate_then_evaluate_json(tmp_path, tables, model):
    before = anomalia.load(model).threshold_
    res = run("calibrate", model, tables["dev"], "--strategy", "fpr", "--target", "0.05")
    assert res.exit_code == 0, res.output
    after = anomalia.load(model)
    assert after.threshold_ != before and after.calibration_["strategy"] == "fpr"
    dev = after.calibration_["dev"]  # printed beside the threshold
    assert "(fpr, --target 0.05)" in res.output
    assert (
        f"false-alarm rate {dev['false_alarm_rate']:.3f}, recall {dev['recall']:.3f}" in res.output
    )
    res = run(
        "evaluate", model, tables["test"], "--json", "--cost-miss", "10", "--cost-false-alarm", "1"
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"roc_auc", "average_precision", "f1", "threshold", "expected_cost"} <= set(out)
    assert out["roc_auc"] > 0.99 and out["threshold"] == after.threshold_


def test_evaluate_table_and_plots(tmp_path, tables, model):
    res = run("evaluate", model, tables["test"], "--plots", tmp_path / "plots")
    assert res.exit_code == 0, res.output
    assert "ROC-AUC" in res.output
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"roc.png", "pr.png", "scores.png"}


def test_builtin_dataset_by_name(tmp_path):
    path = tmp_path / "bc.anomalia"
    res = run("fit", "breast-cancer", "-d", "gaussian", "--out", path)
    assert res.exit_code == 0, res.output
    assert "357 rows" in res.output  # benign rows only
    res = run("evaluate", path, "breast-cancer", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["roc_auc"] > 0.9


def test_demo(tmp_path):
    res = run("demo", "--out", tmp_path / "demo")
    assert res.exit_code == 0, res.output
    for name in ("default", "gaussian", "ocsvm", "iforest", "knn", "ae", "dae", "vae", "vqvae"):
        assert f"│ {name} " in res.output
    assert (tmp_path / "demo" / "roc.png").stat().st_size > 1000


def test_listings():
    assert "breast-cancer" in run("datasets").output
    out = run("detectors").output
    assert all(n in out for n in ("gaussian", "ocsvm", "iforest", "lof", "pyod"))


# -- bad input: one line on stderr naming the problem, exit 2, nothing written ---------------


def _bad_csv(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = "txn,amount,age,hour,fraud\n1,0.1,0.2,0.3,0\n2,0.2,0.1,0.0,1\n"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("txn,amount,age,hour,fraud\n1,0.1,,0.3,0\n2,0.2,0.1,0.0,1\n", "NaN"),
        ("txn,amount,age,hour,fraud\n1,0.1,inf,0.3,0\n2,0.2,0.1,0.0,1\n", "inf"),
        ("txn,amount,age,hour,fraud\n1,0.1,abc,0.3,0\n2,0.2,0.1,0.0,1\n", "age"),
        ("txn,amount,hour,fraud\n1,0.1,0.3,0\n2,0.2,0.0,1\n", "age"),
        ("txn,amount,hour,age,fraud\n1,0.1,0.3,0.2,0\n2,0.2,0.0,0.1,1\n", "order"),
        ("txn,amount,age,hour,fraud\n", "empty|no rows"),
    ],
    ids=["nan", "inf", "text", "missing-column", "column-order", "empty"],
)
def test_bad_data_for_scoring(tmp_path, model, content, match):
    data = _bad_csv(tmp_path, "bad.csv", content)
    out = tmp_path / "scores.csv"
    res = run("score", model, data, "--out", out)
    assert res.exit_code == 2, res.output
    assert "error:" in res.stderr
    assert pytest.importorskip("re").search(match, res.stderr, flags=2)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["-d", "nope"], "unknown detector 'nope'"),
        (["-p", "n_trees=3"], "unknown parameter"),
        (["-p", "n_estimators"], "key=value"),
        (["-p", "n_estimators=-3"], "n_estimators"),
        (["--contamination", "0.9"], "contamination"),
        (["--label-column", "nope"], "nope"),
    ],
)
def test_bad_fit_options(tmp_path, tables, args, match):
    out = tmp_path / "m.anomalia"
    res = run("fit", tables["train"], "--out", out, *args)
    assert res.exit_code == 2, res.output
    assert match in res.stderr
    assert not out.exists()


def test_missing_data_file(tmp_path, model):
    res = run("score", model, tmp_path / "nope.csv", "--out", tmp_path / "s.csv")
    assert res.exit_code == 2 and "nope.csv" in res.stderr


def test_not_a_model(tmp_path, tables):
    res = run("score", tables["test"], tables["test"], "--out", tmp_path / "s.csv")
    assert res.exit_code == 2 and "not an anomalia model" in res.stderr


def test_calibrate_without_anomalies_keeps_model(tmp_path, tables, model):
    before = model.read_bytes()
    dev = pd.read_csv(tables["dev"])
    dev[dev.fraud == 0].to_csv(tmp_path / "normal_dev.csv", index=False)
    res = run("calibrate", model, tmp_path / "normal_dev.csv")
    assert res.exit_code == 2 and "no anomalies" in res.stderr
    assert model.read_bytes() == before


def test_bad_score_suffix(tmp_path, tables, model):
    res = run("score", model, tables["test"], "--out", tmp_path / "s.xlsx")
    assert res.exit_code == 2 and ".csv or .parquet" in res.stderr


def test_onehot_ignore_and_anomaly_value(tmp_path):
    rng = np.random.default_rng(1)
    n = 120
    df = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "proto": rng.choice(["tcp", "udp"], n),
            "bytes": rng.normal(size=n),
            "note": ["free text"] * n,
            "label": ["ok"] * 100 + ["attack"] * 20,
        }
    )
    df.loc[100:, "bytes"] += 8
    df.to_csv(tmp_path / "t.csv", index=False)
    model = tmp_path / "m.anomalia"
    common = [
        "--label-column",
        "label",
        "--normal-value",
        "ok",
        "--id-column",
        "id",
        "--ignore-column",
        "note",
    ]
    res = run(
        "fit",
        tmp_path / "t.csv",
        "-d",
        "gaussian",
        "--categorical",
        "onehot",
        "--out",
        model,
        *common,
    )
    assert res.exit_code == 0, res.output
    assert sorted(anomalia.load(model).feature_names_in_) == ["bytes", "proto=tcp", "proto=udp"]
    # later commands reuse the saved options; new data may hold an unseen category
    df.loc[0, "proto"] = "icmp"
    df.to_csv(tmp_path / "new.csv", index=False)
    res = run("evaluate", model, tmp_path / "new.csv", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["roc_auc"] > 0.95
    # without --categorical onehot the text column is named in the error
    res = run("fit", tmp_path / "t.csv", "--out", tmp_path / "x", *common)
    assert res.exit_code == 2
    assert "proto" in res.stderr


def test_fit_says_when_early_stopping_ended_training(tmp_path, tables):
    res = run("fit", tables["train"], "-d", "ae", "-p", "hidden=8,", "-p", "epochs=200",
              "-p", "validation_fraction=0.1", "-p", "patience=2", "-p", "lr=0.03",
              "--label-column", "fraud",
              "--out", tmp_path / "ae.anomalia")  # fmt: skip
    assert res.exit_code == 0, res.output
    epoch = anomalia.load(tmp_path / "ae.anomalia").stopped_epoch_
    assert 2 < epoch < 200
    assert f"stopped at epoch {epoch}: no improvement for 2 epochs" in res.stdout


def test_image_folder_fit_evaluate_with_reconstruction_grid(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = (d.images * 255 / 16).astype(np.uint8)
    zeros, ones = np.flatnonzero(d.target == 0), np.flatnonzero(d.target == 1)
    for i in zeros[:80]:
        (tmp_path / "train").mkdir(exist_ok=True)
        Image.fromarray(pixels[i]).save(tmp_path / "train" / f"{i}.png")
    for folder, idx in (("good", zeros[80:110]), ("bad", ones[:20])):
        (tmp_path / "test" / folder).mkdir(parents=True, exist_ok=True)
        for i in idx:
            Image.fromarray(pixels[i]).save(tmp_path / "test" / folder / f"{i}.png")
    model = tmp_path / "m.anomalia"
    res = run(
        "fit",
        tmp_path / "train",
        "-d",
        "conv-ae",
        "-p",
        "epochs=10",
        "-p",
        "channels=8,16",
        "--out",
        model,
    )
    assert res.exit_code == 0, res.output
    res = run(
        "evaluate",
        model,
        tmp_path / "test",
        "--normal-value",
        "good",
        "--json",
        "--plots",
        tmp_path / "plots",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["detector"] == "conv-ae"
    assert out["roc_auc"] > 0.9
    assert (tmp_path / "plots" / "reconstructions.png").stat().st_size > 1000
    res = run("score", model, tmp_path / "test", "--out", tmp_path / "s.csv")
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "s.csv").file.iloc[0] == "bad/1.png"
    # an image of another size is named in the error
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "odd.png")
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd.png").rename(tmp_path / "odd" / "odd.png")
    res = run("score", model, tmp_path / "odd", "--out", tmp_path / "s2.csv")
    assert res.exit_code == 2
    assert "(1, 9, 9)" in res.stderr
    assert not (tmp_path / "s2.csv").exists()


def test_reconstruction_grid_of_a_table_model_with_an_image_shape(tmp_path, monkeypatch):
    """A dense ae on the 8x8 digits table draws its rows as images, labelled and scored."""
    import anomalia.plots

    drawn, save = {}, anomalia.plots.save_figure

    def keep(fig, path):
        drawn[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(anomalia.plots, "save_figure", keep)
    model = tmp_path / "digits-ae.anomalia"
    res = run("fit", "digits", "-d", "ae", "-p", "image_shape=8,8", "-p", "epochs=2", "-o", model)
    assert res.exit_code == 0, res.output
    res = run("evaluate", model, "digits", "--plots", tmp_path / "plots")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plots" / "reconstructions.png").stat().st_size > 1000
    fig = drawn["reconstructions.png"]
    assert fig.get_suptitle().startswith("ae: reconstructions of digits\nnumber above each")
    assert [sub.get_suptitle() for sub in fig.subfigs] == [
        "the 8 most anomalous (highest scores)",
        "the 8 least anomalous (lowest scores)",
    ]
    labels = [ax.get_title().split("\n")[1] for ax in fig.axes if ax.get_title()]
    assert len(labels) == 16 and set(labels) <= {"anomaly", "normal"}


def test_explain_lists_worst_reconstructed_features(tmp_path, tables):
    model = tmp_path / "ae.anomalia"
    res = run(
        "fit",
        tables["train"],
        "-d",
        "ae",
        "-p",
        "epochs=20",
        "--label-column",
        "fraud",
        "--id-column",
        "txn",
        "--out",
        model,
    )
    assert res.exit_code == 0, res.output
    res = run("explain", model, tables["test"], "--top", "2", "--rows", "3")
    assert res.exit_code == 0, res.output
    assert "txn" in res.output
    assert "amount" in res.output or "age" in res.output or "hour" in res.output
    res = run("explain", tmp_path / "nope", tables["test"])
    assert res.exit_code == 2
    for bad in (["--top", "-3"], ["--top", "0"], ["--rows", "-1"]):
        res = run("explain", model, tables["test"], *bad)
        assert res.exit_code == 2, res.output
        assert _one_error_line(res.stderr).startswith(f"error: {bad[0]} must be an integer >= 1")
    from anomalia.explain import explain

    X = pd.read_csv(tables["test"]).drop(columns=["txn", "fraud"])
    for kwargs in ({"top": 0}, {"max_rows": -1}):
        with pytest.raises(ValueError, match=f"{next(iter(kwargs))} must be an integer >= 1"):
            explain(anomalia.load(model), X, **kwargs)


def test_explain_needs_an_autoencoder(tmp_path, tables, model):
    res = run("explain", model, tables["test"])
    assert res.exit_code == 2
    assert "auto-encoder" in res.stderr


def test_import_and_help_do_not_load_torch():
    import subprocess
    import sys

    code = "import sys, anomalia, anomalia.cli.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_experiment_reports_f1_and_two_cost_tables(tables):
    res = run(
        "experiment",
        tables["train"],
        "-d",
        "gaussian",
        "-d",
        "iforest",
        "-p",
        "n_estimators=10",
        "--label-column",
        "fraud",
        "--id-column",
        "txn",
    )
    assert res.exit_code == 2  # parameters apply to every detector: gaussian has no trees
    assert "n_estimators" in res.stderr
    res = run(
        "experiment",
        tables["train"],
        "-d",
        "gaussian",
        "-d",
        "iforest",
        "--label-column",
        "fraud",
        "--id-column",
        "txn",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["cost_tables"]) == {"review-queue", "screening"}
    assert [r["detector"] for r in out["rows"]] == ["gaussian", "iforest"]
    for row in out["rows"]:
        assert {"roc_auc", "average_precision", "f1", "cost_screening", "cost_review-queue"} <= set(
            row
        )
        # a miss costs 50 in screening: its threshold flags at least as much as review-queue's
        assert row["threshold_screening"] <= row["threshold_review-queue"]
    res = run(
        "experiment",
        tables["train"],
        "--label-column",
        "fraud",
        "--id-column",
        "txn",
        "--cost-table",
        "fraud=20,1",
    )
    assert res.exit_code == 0, res.output
    assert "fraud" in res.output and "default" in res.output  # no -d: as fit, the default
    res = run("experiment", tables["train"], "--label-column", "fraud", "--cost-table", "x=1")
    assert res.exit_code == 2
    assert "NAME=MISS,FALSE_ALARM" in res.stderr


def test_confidence_with_class_column_and_outliers(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [6, 0], [0, 6]], dtype=float)
    X = np.vstack([rng.normal(c, 0.7, size=(80, 2)) for c in centres])
    df = pd.DataFrame(X, columns=["a", "b"])
    df["kind"] = np.repeat(["x", "y", "z"], 80)
    df.to_csv(tmp_path / "known.csv", index=False)
    pd.DataFrame(rng.normal([6, 6], 0.7, size=(30, 2)), columns=["a", "b"]).to_csv(
        tmp_path / "outliers.csv", index=False
    )
    test = pd.DataFrame(
        np.vstack(
            [rng.normal(c, 0.7, size=(20, 2)) for c in centres]
            + [rng.normal([-6, -6], 0.7, size=(20, 2))]
        ),
        columns=["a", "b"],
    )
    test["unknown"] = np.r_[np.zeros(60, int), np.ones(20, int)]
    test.to_csv(tmp_path / "test.csv", index=False)
    model = tmp_path / "conf.anomalia"
    res = run(
        "fit",
        tmp_path / "known.csv",
        "-d",
        "confidence",
        "--class-column",
        "kind",
        "-p",
        "score_method=mahalanobis",
        "-p",
        "epochs=30",
        "--outliers",
        tmp_path / "outliers.csv",
        "--out",
        model,
    )
    assert res.exit_code == 0, res.output
    assert list(anomalia.load(model).classes_) == ["x", "y", "z"]
    res = run("evaluate", model, tmp_path / "test.csv", "--label-column", "unknown", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["roc_auc"] > 0.95
    res = run(
        "fit",
        tmp_path / "known.csv",
        "-d",
        "confidence",
        "--ignore-column",
        "kind",
        "--out",
        tmp_path / "x",
    )
    assert res.exit_code == 2
    assert "--class-column" in res.stderr


def test_robust_gaussian_from_the_command_line(tmp_path):
    # training data with a hidden cluster of anomalies (10 %), no labels
    rng = np.random.default_rng(0)
    train = np.vstack([rng.normal(size=(450, 3)), rng.normal(4, 0.2, size=(50, 3))])
    test = np.vstack([rng.normal(size=(60, 3)), rng.normal(4, 0.2, size=(10, 3))])
    pd.DataFrame(train, columns=list("abc")).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(test, columns=list("abc")).to_csv(tmp_path / "test.csv", index=False)
    aucs = {}
    for name, params in {"ml": [], "robust": ["-p", "support_fraction=0.5"]}.items():
        model = tmp_path / f"{name}.anomalia"
        res = run("fit", tmp_path / "train.csv", "-d", "gaussian", *params, "--out", model)
        assert res.exit_code == 0, res.output
        res = run("score", model, tmp_path / "test.csv", "--out", tmp_path / f"{name}.csv")
        assert res.exit_code == 0, res.output
        scores = pd.read_csv(tmp_path / f"{name}.csv")["anomaly_score"]
        aucs[name] = roc_auc_score(np.r_[np.zeros(60), np.ones(10)], scores)
    assert aucs["robust"] > 0.99 and aucs["robust"] > aucs["ml"]
    res = run("fit", tmp_path / "train.csv", "-d", "gaussian", "-p", "support_fraction=2",
              "--out", tmp_path / "bad.anomalia")  # fmt: skip
    assert res.exit_code == 2 and "support_fraction" in res.stderr
    assert not (tmp_path / "bad.anomalia").exists()


# -- every user error is one line, exit 2: writing, usage, option and data errors ----------


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_out_naming_a_folder_is_one_line(tmp_path, tables, model):
    folder = tmp_path / "scores.csv"
    folder.mkdir()
    res = run("score", model, tables["test"], "--out", folder)
    assert res.exit_code == 2, res.output
    assert "scores.csv" in _one_error_line(res.stderr)
    assert list(folder.iterdir()) == []
    res = run("fit", tables["train"], "-d", "gaussian", "--out", tmp_path)
    assert res.exit_code == 2, res.output
    assert str(tmp_path) in _one_error_line(res.stderr)


def test_an_os_error_while_writing_is_one_line(tmp_path, tables, monkeypatch):
    import errno

    from anomalia.base import BaseDetector

    def full_disk(self, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(BaseDetector, "save", full_disk)
    out = tmp_path / "m.anomalia"
    res = run("fit", tables["train"], "-d", "gaussian", "--out", out)
    assert res.exit_code == 2, res.output
    assert _one_error_line(res.stderr) == f"error: cannot access {out}: No space left on device"


def _main(monkeypatch, capsys, *args):
    """Run the console script's entry point as the shell does; (exit code, stdout, stderr)."""
    from anomalia.cli.app import main

    monkeypatch.setattr("sys.argv", ["anomalia", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["fit", "data.csv", "--out", "m", "--bogus"], "No such option: --bogus"),
        (["calibrate", "m", "d.csv", "--cost-miss", "abc"], "Invalid value for '--cost-miss'"),
        (["fit"], "Missing argument"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_usage_errors_are_one_line(monkeypatch, capsys, args, match):
    code, out, err = _main(monkeypatch, capsys, *args)
    assert code == 2
    line = _one_error_line(err)
    assert match in line and "--help'" in line
    assert out == ""


def test_entry_point_keeps_help_and_exit_codes(monkeypatch, capsys, tmp_path, tables, model):
    code, out, _ = _main(monkeypatch, capsys, "--help")
    assert code == 0 and "fit" in out
    code, out, err = _main(monkeypatch, capsys)  # no arguments: the help
    assert code == 2 and "fit" in out + err and "error:" not in out + err
    code, _, err = _main(monkeypatch, capsys, "score", model, tmp_path / "nope.csv", "-o", "s.csv")
    assert code == 2 and "nope.csv" in _one_error_line(err)
    code, out, _ = _main(
        monkeypatch, capsys, "score", model, tables["test"], "-o", tmp_path / "s.csv"
    )
    assert code == 0 and "scored" in out


def test_calibrate_refuses_options_the_strategy_does_not_use(tables, model):
    before = model.read_bytes()
    for args, match in [
        (["--strategy", "f1", "--target", "0.5"], "'f1' does not use --target"),
        (["--strategy", "fpr", "--target", "0.1", "--cost-miss", "1"], "does not use --cost-miss"),
        (["--strategy", "cost", "--target", "0.1"], "'cost' does not use --target"),
        (["--strategy", "recall", "--target", "2"], "needs --target in [0, 1]"),
        (["--strategy", "cost", "--cost-miss", "5"], "needs both --cost-miss and --cost-false"),
    ]:
        res = run("calibrate", model, tables["dev"], "--label-column", "fraud", *args)
        assert res.exit_code == 2, res.output
        assert match in _one_error_line(res.stderr)
    assert model.read_bytes() == before


@pytest.mark.parametrize("detector", ["gaussian", "iforest", "knn", "ae"])
def test_values_too_large_to_compute_with_are_one_line(tmp_path, tables, detector):
    train = pd.read_csv(tables["train"])
    huge = train.copy()
    huge.loc[3, "age"] = 1e308
    huge.to_csv(tmp_path / "huge.csv", index=False)
    fast = ["-p", "epochs=3"] if detector == "ae" else []
    common = ["--label-column", "fraud", "--id-column", "txn", "-d", detector, *fast]
    res = run("fit", tmp_path / "huge.csv", *common, "--out", tmp_path / "bad.anomalia")
    assert res.exit_code == 2, res.output
    assert "column 'age' holds values too large" in _one_error_line(res.stderr)
    assert not (tmp_path / "bad.anomalia").exists()
    model = tmp_path / "m.anomalia"
    assert run("fit", tables["train"], *common, "--out", model).exit_code == 0
    res = run("score", model, tmp_path / "huge.csv", "--out", tmp_path / "s.csv")
    if detector == "iforest":  # trees only compare values: 1e308 is simply far out
        assert res.exit_code == 0, res.output
        assert pd.read_csv(tmp_path / "s.csv").anomaly_score.notna().all()
        return
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.stderr)
    assert "1 of 205 rows" in line and "row 3" in line and "column 'age'" in line
    assert not (tmp_path / "s.csv").exists()


def test_diverging_training_is_one_line(tmp_path, tables):
    out = tmp_path / "m.anomalia"
    res = run("fit", tables["train"], "-d", "ae", "-p", "lr=1e12", "-p", "epochs=5", "--out", out)
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.stderr)
    assert "training loss became" in line and "lr=1e+12 is too high" in line
    assert not out.exists()


def test_an_image_stack_for_a_table_model_names_the_file(tmp_path, tables, model):
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((5, 3, 2)))
    res = run("score", model, cube, "--out", tmp_path / "s.csv")
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.stderr)
    assert "cube.npy" in line and "(5, 3, 2)" in line and "3 columns" in line
    np.save(cube, np.zeros((5, 3, 1)))  # as many values as columns: the model refuses it
    res = run("score", model, cube, "--out", tmp_path / "s.csv")
    assert res.exit_code == 2, res.output
    assert "takes a table" in _one_error_line(res.stderr)


def test_signed_models_end_to_end(tmp_path, tables, monkeypatch):
    key = tmp_path / "model.key"
    key.write_text("a-secret-signing-key-of-32-bytes\n")
    model = tmp_path / "signed.anomalia"
    common = ("--label-column", "fraud", "--id-column", "txn")
    res = run(
        "fit", tables["train"], "-d", "gaussian", *common, "--out", model, "--sign-key-file", key
    )
    assert res.exit_code == 0, res.output
    res = run("calibrate", model, tables["dev"], "--sign-key-file", key)
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("ANOMALIA_MODEL_KEY", key.read_text())
    res = run("score", model, tables["test"], "--out", tmp_path / "s.csv")
    assert res.exit_code == 0, res.output
    # an unsigned model is refused while a key is required
    plain = tmp_path / "plain.anomalia"
    monkeypatch.delenv("ANOMALIA_MODEL_KEY")
    assert run("fit", tables["train"], "-d", "gaussian", *common, "--out", plain).exit_code == 0
    monkeypatch.setenv("ANOMALIA_MODEL_KEY", key.read_text())
    res = run("score", plain, tables["test"], "--out", tmp_path / "t.csv")
    assert res.exit_code == 2 and "not signed" in res.output
    assert not (tmp_path / "t.csv").exists()
    # the wrong key
    monkeypatch.setenv("ANOMALIA_MODEL_KEY", "another-key-that-is-long-enough")
    res = run("evaluate", model, tables["test"])
    assert res.exit_code == 2 and "signature does not match" in res.output


def test_saved_data_options_of_the_wrong_type_are_refused(tmp_path, model, tables):
    import zipfile

    with zipfile.ZipFile(model) as zf:
        blobs = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(blobs["manifest.json"])
    manifest["metadata"]["table"]["feature_names"] = 5
    blobs["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(model, "w") as zf:
        for n, b in blobs.items():
            zf.writestr(n, b)
    res = run("score", model, tables["test"], "--out", tmp_path / "s.csv")
    assert res.exit_code == 2 and "saved data options are invalid" in res.output


def test_version_and_short_help():
    res = run("--version")
    assert res.exit_code == 0 and res.output.strip() == f"anomalia {anomalia.__version__}"
    for args in (["-h"], ["fit", "-h"], ["detectors", "-h"]):
        res = run(*args)
        assert res.exit_code == 0 and "Usage" in res.output, args


def test_fit_defaults_to_the_recommended_detector(tmp_path, tables):
    res = run("fit", tables["train"], "--label-column", "fraud", "--out", tmp_path / "m")
    assert res.exit_code == 0 and "fitted default" in res.output
    listed = run("detectors").output
    first_row = next(line for line in listed.splitlines() if line.startswith("│"))
    assert first_row.split("│")[1].strip() == "default"


def test_detectors_name_lists_parameters_with_defaults_and_meaning():
    res = run("detectors", "gaussian")
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "support_fraction" in text and "None" in text and "robust" in text
    assert "0.2" in run("detectors", "dae").output  # the preset noise is its default
    res = run("detectors", "nope")
    assert res.exit_code == 2 and "unknown detector" in res.output


@pytest.mark.parametrize("column", ["Class", "label", "TARGET", "is_anomaly"])
def test_fit_warns_about_a_label_named_feature(tmp_path, tables, column):
    frame = pd.read_csv(tables["train"]).rename(columns={"fraud": column})
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = run(
        "fit", tmp_path / "t.csv", "-d", "gaussian", "--id-column", "txn", "-o", tmp_path / "m"
    )
    assert res.exit_code == 0
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and repr(column) in warnings[0]
    assert "--label-column" in warnings[0]
    res = run("fit", tmp_path / "t.csv", "-d", "gaussian", "--id-column", "txn",
              "--label-column", column, "-o", tmp_path / "m")  # fmt: skip
    assert res.exit_code == 0 and "warning:" not in res.output


def _commands():
    import typer

    return typer.main.get_command(app).commands


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_names_arguments_and_flags_as_the_text_does(name):
    """``Usage: anomalia score [OPTIONS] MODEL DATA`` and ``--keep-all``, never
    ``{model}`` or ``--keep-all <bool>``; every command's help, so a new one follows."""
    res = run(name, "--help")
    assert res.exit_code == 0, res.output
    usage = next(line for line in res.output.splitlines() if "Usage:" in line)
    command = _commands()[name]
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.name.upper() in usage, (name, usage)
    assert "{" not in usage and "<bool>" not in res.output, res.output


def test_column_options_are_declared_once_for_every_command():
    """The five column options come from one place (cli._common.data_options): each command
    that reads a table with labels shows them with the same help."""
    from anomalia.cli._common import DATA_OPTIONS

    helps = {}
    for name in ("fit", "calibrate", "score", "evaluate", "explain", "experiment"):
        opts = {p.name: p.help for p in _commands()[name].params}
        for option in DATA_OPTIONS:
            assert option in opts, (name, option)
            helps.setdefault(option, opts[option])
            assert opts[option] == helps[option]


@pytest.mark.parametrize(
    ("strategy", "shown"),
    [("fpr", "--target 0.01"), ("recall", "--target 0.95"), ("cost", "--cost-miss 50")],
)
def test_calibrate_without_options_uses_the_documented_defaults(
    tmp_path, tables, model, strategy, shown
):
    out = tmp_path / "calibrated.anomalia"
    res = run("calibrate", model, tables["dev"], "--strategy", strategy, "--out", out)
    assert res.exit_code == 0, res.output
    assert shown in res.output and "on the dev set" in res.output
    if strategy == "cost":
        assert "cost " in res.output.split("on the dev set")[1]


def test_lof_from_the_command_line(tmp_path, tables):
    path = tmp_path / "lof.anomalia"
    res = run("fit", tables["train"], "-d", "lof", "-p", "n_neighbors=15",
              "--label-column", "fraud", "--id-column", "txn", "--out", path)  # fmt: skip
    assert res.exit_code == 0, res.output
    res = run("score", path, tables["test"], "--out", tmp_path / "s.csv")
    assert res.exit_code == 0, res.output
    scores = pd.read_csv(tmp_path / "s.csv")
    det = anomalia.load(path)
    assert det.name == "lof" and det.estimator_.n_neighbors == 15
    test = pd.read_csv(tables["test"])
    expected = det.anomaly_score(test[["amount", "age", "hour"]])
    np.testing.assert_allclose(scores.anomaly_score, expected, rtol=1e-12)
    assert roc_auc_score(test.fraud, scores.anomaly_score) > 0.95
