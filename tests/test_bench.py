"""The benchmark harness: protocols, detector specs, jobs in processes, resume, summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from anomalia import bench
from anomalia.cli.app import app
from anomalia.detectors import pyod as pyod_wrapper
from anomalia.errors import AnomaliaError

runner = CliRunner()


def _data(n: int, anomalies: int, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, anomalies, replace=False)] = 1
    X[y == 1] += rng.choice([-5.0, 5.0], size=(anomalies, d))
    return X, y


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """Two tiny ADBench-format datasets."""
    folder = tmp_path / "adbench"
    folder.mkdir()
    for name, (n, a, d) in {"2_alpha": (300, 20, 3), "10_beta": (1200, 60, 5)}.items():
        X, y = _data(n, a, d, seed=n)
        np.savez(folder / f"{name}.npz", X=X, y=y)
    return folder


def test_adbench_datasets_are_named_and_ordered_by_number(suite):
    assert list(bench.adbench_datasets(suite)) == ["alpha", "beta"]
    with pytest.raises(AnomaliaError, match="no ADBench data folder"):
        bench.adbench_datasets(suite / "missing")


def test_unsup_split_sizes_class_counts_and_scaling():
    X, y = _data(2000, 200)
    X_train, X_test, y_train, y_test = bench.split(X, y, "unsup", seed=0)
    assert (len(X_train), len(X_test)) == (1400, 600)
    assert (y_train.sum(), y_test.sum()) == (140, 60)  # stratified, anomalies kept in train
    np.testing.assert_allclose(X_train.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X_train.max(axis=0), 1.0)
    # under 1,000 rows: resampled with replacement to 1,000; over 10,000: subsampled
    small = bench.split(*_data(500, 50), "unsup", seed=0)
    assert (len(small[0]), len(small[1])) == (700, 300)
    assert len(np.unique(np.vstack(small[:2]), axis=0)) < 1000  # duplicates from resampling
    big = bench.split(*_data(20000, 2000), "unsup", seed=0)
    assert (len(big[0]), len(big[1])) == (7000, 3000)
    assert (big[2].sum(), big[3].sum()) == (700, 300)  # subsample and split both stratified
    rare = bench.split(*_data(95000, 30), "unsup", seed=0)  # as rare as in smtp
    assert rare[2].sum() >= 1 and rare[3].sum() >= 1


def test_clean_split_sizes_class_counts_and_scaling():
    X, y = _data(2001, 200)  # 1,801 normals: 900 train, 901 test
    X_train, X_test, y_train, y_test = bench.split(X, y, "clean", seed=1)
    assert (len(X_train), y_train.sum()) == (900, 0)
    assert (len(X_test), y_test.sum()) == (901 + 200, 200)
    np.testing.assert_allclose(X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X_train.std(axis=0), 1.0)
    other = bench.split(X, y, "clean", seed=2)[0]
    assert not np.allclose(np.sort(X_train[:, 0]), np.sort(other[:, 0]))
    np.testing.assert_array_equal(bench.split(X, y, "clean", seed=1)[0], X_train)
    with pytest.raises(AnomaliaError, match="unknown protocol"):
        bench.split(X, y, "semi", seed=0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("knn", ("anomalia", "knn", {})),
        ("ae(hidden=(16, 8), epochs=5)", ("anomalia", "ae", {"hidden": (16, 8), "epochs": 5})),
        ("sklearn:IsolationForest", ("sklearn", "IsolationForest", {})),
        ("pyod:KNN(n_neighbors=10)", ("pyod", "KNN", {"n_neighbors": 10})),
        # a ':' inside the parameters (a dict) is not a source
        (
            "ensemble(detectors=(('knn', {'n_neighbors': 3}), 'gaussian'))",
            ("anomalia", "ensemble", {"detectors": (("knn", {"n_neighbors": 3}), "gaussian")}),
        ),
    ],
)
def test_parse_spec(spec, expected):
    assert bench.parse_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("knn(k=", "closing parenthesis"),
        ("knn(5)", "key=literal"),
        ("knn(k=os.system('x'))", "key=literal"),
        ("torch:Linear", "source"),
        ("kn n", "not a detector name"),
    ],
)
def test_parse_spec_rejects_bad_specs(spec, match):
    with pytest.raises(AnomaliaError, match=match):
        bench.parse_spec(spec)


def test_plan_checks_detectors_and_skips_pyod_when_absent(suite, monkeypatch):
    data = bench.adbench_datasets(suite)
    with pytest.raises(AnomaliaError, match="unknown detector"):
        bench.plan(data, ["nope"])
    with pytest.raises(AnomaliaError, match="unknown parameter"):
        bench.plan(data, ["knn(trees=3)"])
    monkeypatch.setattr(pyod_wrapper, "pyod_available", lambda: False)
    jobs, notes = bench.plan(data, ["knn", "pyod:ECOD"], ["clean"], [0, 1])
    assert {j.detector for j in jobs} == {"knn"} and len(jobs) == 2 * 2
    assert notes == ["skipped pyod:ECOD: PyOD is not installed (pip install 'anomalia[bench]')"]
    with pytest.raises(AnomaliaError, match="PyOD is not installed"):
        bench.make_scorer("pyod:ECOD", 0)


def test_sklearn_peers_score_in_anomaly_orientation():
    X, y = _data(600, 30)
    for name in bench.SKLEARN_PEERS:
        model, scorer = bench.make_scorer(f"sklearn:{name}", seed=0)
        model.fit(X[y == 0])
        scores = scorer(X)
        assert np.mean(scores[y == 1]) > np.mean(scores[y == 0]), name
    with pytest.raises(AnomaliaError, match="choose from"):
        bench.make_scorer("sklearn:SVC", 0)


def test_run_job_records_metrics_and_errors(suite):
    path = str(suite / "2_alpha.npz")
    row = bench.run_job(bench.Job("clean", "alpha", path, "knn", 0))
    assert row["status"] == "ok" and row["roc_auc"] > 0.95 and 0 < row["average_precision"] <= 1
    assert (row["n_train"], row["train_anomalies"]) == (140, 0)
    assert row["test_anomalies"] == 20 and "anomalia" in row["versions"]
    bad = bench.run_job(bench.Job("clean", "alpha", path, "knn(n_neighbors=-1)", 0))
    assert bad["status"] == "error" and "n_neighbors" in bad["error"]


def test_run_resumes_and_records_timeouts(suite, tmp_path):
    data = bench.adbench_datasets(suite)
    jobs, _ = bench.plan(data, ["knn", "iforest(n_estimators=20)"], bench.PROTOCOLS, [0])
    out = tmp_path / "res.csv"

    seen = []

    def interrupt_after_three(row):
        seen.append(row)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bench.run(jobs, out, n_jobs=1, progress=interrupt_after_three)
    assert len(pd.read_csv(out)) == 3  # finished rows were kept

    rerun = []
    df = bench.run(jobs, out, n_jobs=2, progress=rerun.append)
    assert len(rerun) == len(jobs) - 3  # nothing finished is redone
    assert len(df) == len(jobs) and not df.duplicated(bench.KEY).any()
    assert (df.status == "ok").all()
    assert sorted(bench.keys(bench.read_results(out))) == sorted(j.key() for j in jobs)

    spec = "ae(epochs=1000000, patience=None)"
    slow = [bench.Job("clean", "alpha", jobs[0].path, spec, seed) for seed in (0, 1)]
    df = bench.run(slow, out, timeout=1.5, n_jobs=1)
    first, second = df.iloc[-2], df.iloc[-1]
    assert first.status == "timeout" and "time limit" in first.error
    assert first.detector == spec and np.isnan(first.roc_auc)
    assert second.status == "timeout" and "another seed" in second.error  # not run again
    assert len(bench.run(slow, out, timeout=1.5)) == len(jobs) + 2  # recorded, not redone


def test_resume_reuses_rows_only_for_the_same_data_and_parameters(suite, tmp_path):
    out = tmp_path / "res.csv"
    jobs, _ = bench.plan(bench.adbench_datasets(suite), ["knn"], ["clean"], [0])
    assert all(len(j.sha256) == 64 and '"n_neighbors"' in j.params for j in jobs)
    first = bench.run(jobs, out, n_jobs=1)
    assert (first.data_sha256 == [bench.file_sha256(j.path) for j in jobs]).all()

    X, y = _data(300, 20, 3, seed=1)  # alpha's file changes, beta's does not
    np.savez(suite / "2_alpha.npz", X=X, y=y)
    jobs, _ = bench.plan(bench.adbench_datasets(suite), ["knn"], ["clean"], [0])
    resumed = bench.resume(bench.read_results(out), jobs)
    assert resumed.reused == 1 and [j.dataset for j in resumed.todo] == ["alpha"]
    assert resumed.notes == ["running 1 finished jobs again: their data file changed"]
    rerun = []
    df = bench.run(jobs, out, n_jobs=1, progress=rerun.append)
    assert [r["dataset"] for r in rerun] == ["alpha"] and len(df) == 2
    assert not df.duplicated(bench.KEY).any()
    new_alpha = df.set_index("dataset").loc["alpha"]
    assert new_alpha.data_sha256 == bench.file_sha256(suite / "2_alpha.npz")
    assert new_alpha.data_sha256 != first.set_index("dataset").loc["alpha"].data_sha256

    # parameters recorded by another version (another default): that row runs again
    stored = pd.read_csv(out)
    stored.loc[stored.dataset == "beta", "params"] = stored.params[0].replace('"method"', '"m"')
    stored.to_csv(out, index=False)
    resumed = bench.resume(bench.read_results(out), jobs)
    assert [j.dataset for j in resumed.todo] == ["beta"]
    assert resumed.notes == ["running 1 finished jobs again: their detector's parameters changed"]

    # a file written before hashes were recorded: nothing in it can be checked, all run again
    stored.drop(columns=["data_sha256", "params"]).to_csv(out, index=False)
    resumed = bench.resume(bench.read_results(out), jobs)
    assert resumed.reused == 0 and len(resumed.todo) == 2
    assert "no data hash" in resumed.notes[0]
    assert len(bench.run(jobs, out)) == 2  # replaced, not duplicated


def test_jobs_made_by_hand_get_their_hash_and_the_user_data_file_is_reproducible(suite, tmp_path):
    path = str(suite / "2_alpha.npz")
    job = bench.Job("clean", "alpha", path, "knn", 0)
    row = bench.run([job], tmp_path / "r.csv").iloc[0]
    assert row.data_sha256 == bench.file_sha256(path)
    assert row.params == bench.detector_params("knn", 0)
    X, y = _data(100, 5)
    a = bench.frame_dataset(X, y, (tmp_path / "a").mkdir() or tmp_path / "a", "mine")
    b = bench.frame_dataset(X, y, (tmp_path / "b").mkdir() or tmp_path / "b", "mine")
    assert bench.file_sha256(a) == bench.file_sha256(b)  # np.savez's would differ in time
    np.testing.assert_array_equal(bench.load_npz(a)[0], X)
    with pytest.raises(AnomaliaError, match="cannot read the dataset file"):
        bench.file_sha256(tmp_path / "gone.npz")


def test_ctrl_c_kills_running_jobs_keeps_finished_ones(suite, tmp_path):
    import os
    import signal

    path = str(suite / "2_alpha.npz")
    fast = bench.Job("clean", "alpha", path, "knn", 0)
    slow = bench.Job("clean", "alpha", path, "ae(epochs=1000000, patience=None)", 0)
    out = tmp_path / "r.csv"

    def press_ctrl_c(row):
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # ignored when the suite runs in the background
    with pytest.raises(KeyboardInterrupt):
        bench.run([fast, slow], out, n_jobs=2, progress=press_ctrl_c)
    df = pd.read_csv(out)
    assert list(df.detector) == ["knn"]  # the killed job is not recorded: it runs on resume
    assert not bench._LIVE
    assert signal.getsignal(signal.SIGINT) is before  # the handler it found is back


def test_summary_ranks_wins_and_published_comparison(tmp_path):
    rows = []
    for ds, aucs in {"breastw": (0.99, 0.90, 0.95), "wine": (0.80, 0.85, 0.70)}.items():
        for det, auc in zip(["default", "sklearn:IsolationForest", "knn"], aucs, strict=True):
            for seed in (0, 1):
                rows.append({"protocol": "unsup", "dataset": ds, "detector": det,
                             "seed": seed, "status": "ok", "roc_auc": auc,
                             "average_precision": auc / 2, "fit_seconds": 1.0})  # fmt: skip
    rows.append({"protocol": "unsup", "dataset": "wine", "detector": "knn", "seed": 2,
                 "status": "timeout", "fit_seconds": 5.0})  # fmt: skip
    df = bench._tidy(pd.DataFrame(rows))
    ref = tmp_path / "ref"
    ref.mkdir()
    published = {"dataset": ["breastw", "wine", "breastw", "wine"],
                 "method": ["IForest", "IForest", "ECOD", "ECOD"],
                 "aucroc": [0.98, 0.80, 0.99, 0.60]}  # fmt: skip
    pd.DataFrame(published).to_csv(ref / "adbench_unsup_published.csv", index=False)
    s = bench.summarize(df, reference_dir=ref)["unsup"]
    by = {r["detector"]: r for r in s["detectors"]}
    assert by["default"]["mean_auc"] == pytest.approx(0.895)
    assert by["default"]["avg_rank"] == pytest.approx(1.5)  # 1st on breastw, 2nd on wine
    assert (by["default"]["wins"], by["sklearn:IsolationForest"]["wins"]) == (1, 1)
    assert by["knn"]["timeouts"] == 1
    assert s["vs_best_peer"] == {"detector": "default", "peer": "sklearn:IsolationForest",
                                 "datasets": 2, "margin": pytest.approx(0.02),
                                 "wins": 1, "losses": 1}  # fmt: skip
    assert s["published"]["method"] == "IForest"
    assert s["published"]["margin"] == pytest.approx(0.895 - 0.89)
    md = bench.summary_markdown({"unsup": s})
    assert "| default | 2 | 0.895 |" in md and "wins 1, losses 1" in md
    assert json.loads(bench.summary_json({"unsup": s}))["unsup"]["n_datasets"] == 2
    figures = bench.plot_results(df, tmp_path / "r")
    assert [f.name for f in figures] == ["r_unsup_auc.png", "r_unsup_heatmap.png"]
    assert all(f.stat().st_size > 1000 for f in figures)


LONG_SPEC = "ensemble(detectors=(('knn', {'max_samples': 10000}), 'iforest', 'gaussian'), trim=0.1)"


def drawn_figures(monkeypatch) -> dict:
    import anomalia.plots

    drawn, save = {}, anomalia.plots.save_figure

    def keep(fig, path):
        drawn[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(anomalia.plots, "save_figure", keep)
    return drawn


@pytest.mark.parametrize("n_datasets", [1, 2, 5])
def test_plot_results_values_short_names_and_missing_cells(tmp_path, monkeypatch, n_datasets):
    rows = []
    for i in range(n_datasets):
        for det in ("default", "knn", LONG_SPEC):
            ok = not (det == "knn" and i == 0)  # knn timed out on the first dataset
            rows.append({"protocol": "clean", "dataset": f"set{i}", "detector": det, "seed": 0,
                         "status": "ok" if ok else "timeout", "roc_auc": 0.8 + 0.01 * i if ok
                         else None, "average_precision": 0.5, "fit_seconds": 1.0})  # fmt: skip
    drawn = drawn_figures(monkeypatch)
    figures = bench.plot_results(bench._tidy(pd.DataFrame(rows)), tmp_path / "r")
    assert [f.name for f in figures] == ["r_clean_auc.png", "r_clean_heatmap.png"]
    auc, heat = drawn["r_clean_auc.png"], drawn["r_clean_heatmap.png"]
    (ax,) = auc.axes
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert "ensemble [1]" in ticks and LONG_SPEC not in ticks  # the key spells it out
    assert f"[1] {LONG_SPEC}".replace(" ", "") in auc.get_supxlabel().replace("\n", "").replace(
        " ", ""
    )
    assert ax.get_title() == f"protocol clean: {n_datasets} dataset{'s' * (n_datasets > 1)}"
    assert f"knn ({n_datasets - 1} of {n_datasets})" in ticks
    values = {t.get_text() for t in ax.texts}
    assert ("0.800" in values) == (n_datasets <= 2)  # dots with values, not boxes
    cells = [t.get_text() for t in heat.axes[0].texts]
    assert cells.count("timeout") == 1 and "0.80" in cells
    assert "timeout: every seed ran past the time limit" in " ".join(heat.get_supxlabel().split())


def test_cli_bench_end_to_end(suite, tmp_path):
    out = tmp_path / "res.csv"
    args = ["bench", "--data-dir", str(suite), "-d", "knn", "-d", "iforest(n_estimators=20)",
            "-d", "sklearn:IsolationForest", "--seed", "0", "--jobs", "2", "--out", str(out),
            "--reference-dir", str(tmp_path / "none")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out)
    assert len(df) == 2 * 2 * 3 and (df.status == "ok").all()
    assert "| knn |" in (tmp_path / "res_summary.md").read_text()
    for protocol in bench.PROTOCOLS:
        assert (tmp_path / f"res_{protocol}_heatmap.png").exists()
    again = runner.invoke(app, [*args, "--json", "--no-plots"])  # everything already done
    assert again.exit_code == 0
    summary = json.loads(again.stdout)
    assert set(summary) == {"unsup", "clean"}
    assert summary["clean"]["vs_best_peer"]["peer"] == "sklearn:IsolationForest"
    assert len(pd.read_csv(out)) == 12


def test_cli_bench_summary_only_rebuilds_from_every_row_and_runs_nothing(suite, tmp_path):
    out = tmp_path / "res.csv"
    common = ["--data-dir", str(suite), "--protocol", "clean", "--seed", "0", "--out", str(out),
              "--reference-dir", str(tmp_path / "none")]  # fmt: skip
    for spec in ("knn", "iforest(n_estimators=20)"):  # two runs into one file
        assert runner.invoke(app, ["bench", "-d", spec, *common, "--no-plots"]).exit_code == 0
    summary = tmp_path / "res_summary.md"
    assert "| knn |" not in summary.read_text()  # the second run summarised itself only
    rows = out.read_bytes()
    result = runner.invoke(app, ["bench", "--summary-only", "--out", str(out),
                                 "--reference-dir", str(tmp_path / "none")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "| knn |" in summary.read_text() and "| iforest(n_estimators=20) |" in summary.read_text()
    )
    assert out.read_bytes() == rows  # nothing ran, nothing was appended
    assert (tmp_path / "res_clean_heatmap.png").exists()
    bad = runner.invoke(app, ["bench", "--summary-only", "-d", "knn", "--out", str(out)])
    assert bad.exit_code == 2 and "drop --detector" in bad.stderr
    missing = runner.invoke(app, ["bench", "--summary-only", "--out", str(tmp_path / "no.csv")])
    assert missing.exit_code == 2 and "there is no results file" in missing.stderr
    assert not (tmp_path / "no_summary.md").exists()
    (tmp_path / "empty.csv").write_text(",".join(bench.COLUMNS) + "\n")
    empty = runner.invoke(app, ["bench", "--summary-only", "--out", str(tmp_path / "empty.csv")])
    assert empty.exit_code == 2 and "holds no results" in empty.stderr
    assert not (tmp_path / "empty_summary.md").exists()


def test_cli_bench_user_file_and_missing_pyod(tmp_path, monkeypatch):
    X, y = _data(400, 20)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(label=y)
    frame.to_csv(tmp_path / "mine.csv", index=False)
    monkeypatch.setattr(pyod_wrapper, "pyod_available", lambda: False)
    out = tmp_path / "r.parquet"
    result = runner.invoke(app, ["bench", str(tmp_path / "mine.csv"), "--label-column", "label",
                                 "-d", "knn", "-d", "pyod:ECOD", "--protocol", "clean",
                                 "--seed", "0", "--seed", "1", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped pyod:ECOD: PyOD is not installed" in result.stderr
    df = pd.read_parquet(out)
    assert list(df.dataset.unique()) == ["mine"] and len(df) == 2
    # the same file again: the converted data is byte for byte the same, so both rows stand
    again = runner.invoke(app, ["bench", str(tmp_path / "mine.csv"), "--label-column", "label",
                                "-d", "knn", "--protocol", "clean", "--seed", "0",
                                "--seed", "1", "--out", str(out)])  # fmt: skip
    assert again.exit_code == 0 and "reusing 2 finished jobs" in again.stderr


def test_cli_bench_resume_says_what_it_reuses_and_reruns(suite, tmp_path):
    out = tmp_path / "res.csv"
    args = ["bench", "--data-dir", str(suite), "-d", "knn", "--protocol", "clean", "--seed",
            "0", "--out", str(out), "--no-plots"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    X, y = _data(1200, 60, 5, seed=7)
    np.savez(suite / "10_beta.npz", X=X, y=y)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "reusing 1 finished jobs" in result.stderr
    assert "running 1 finished jobs again: their data file changed" in result.stderr
    assert len(pd.read_csv(out)) == 2


def test_cli_bench_defaults_come_from_the_data_dir_and_the_cores(suite, tmp_path, monkeypatch):
    import os

    help_text = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "300"}).stdout
    assert "$ANOMALIA_DATA_DIR/adbench" in help_text and "../shared/datasets/adbench" in help_text
    assert str(bench.default_data_dir()) in help_text
    assert f"the CPU cores this process may use (here: {bench.available_cores()})" in help_text
    assert bench.available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("ANOMALIA_DATA_DIR", str(suite.parent))  # suite is <tmp>/adbench
    assert bench.default_data_dir() == suite
    assert bench.default_reference_dir() == suite.parent.parent / "reference"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not relative to the current folder any more
    result = runner.invoke(app, ["bench", "-d", "knn", "--protocol", "clean", "--seed", "0",
                                 "--dataset", "alpha", "--no-plots", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["clean"]["n_datasets"] == 1
    monkeypatch.setenv("ANOMALIA_DATA_DIR", str(tmp_path / "none"))
    result = runner.invoke(app, ["bench", "-d", "knn"])
    assert result.exit_code == 2 and "set $ANOMALIA_DATA_DIR" in result.stderr


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["-d", "nope"], "unknown detector"),
        (["-d", "sklearn:SVC"], "choose from"),
        (["-d", "sklearn:IsolationForest(trees=3)"], "unexpected keyword"),
        (["--protocol", "semi"], "unknown protocol"),
        (["--out", "r.txt"], ".csv or .parquet"),
        (["--dataset", "zeta"], "no dataset name"),
        (["--jobs", "0"], "--jobs"),
        (["--jobs", "-2"], "--jobs"),
    ],
)
def test_cli_bench_bad_options_exit_2_without_output(suite, tmp_path, extra, match):
    out = tmp_path / "r.csv"
    args = ["bench", "--data-dir", str(suite), "--out", str(out), "-d", "knn", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and match in result.stderr
    assert not out.exists()
