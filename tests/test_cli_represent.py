"""anomalia embed / plot-codes / codebook end to end through Typer's runner, on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

import anomalia
from anomalia.cli.app import app
from anomalia.represent import perplexity

runner = CliRunner()

VQ = ["-p", "hidden=16,", "-p", "n_codes=8", "-p", "code_dim=2", "-p", "n_latents=1"]
TINY = ["-p", "epochs=30", "-p", "batch_size=16", "--seed", "0"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """8 far-apart clusters of 30 rows: an id, 4 features and the cluster ("digit")."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 30)
    X = rng.normal(0, 5, size=(8, 4))[labels] + rng.normal(0, 0.1, size=(240, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame.insert(0, "key", np.arange(240) + 1000)
    frame["digit"] = labels
    path = tmp_path_factory.mktemp("data") / "clusters.csv"
    frame.to_csv(path, index=False)
    return path


def fit(path, out, detector, *extra):
    res = run(
        "fit",
        path,
        "-d",
        detector,
        "--id-column",
        "key",
        "--ignore-column",
        "digit",
        *extra,
        "-o",
        out,
    )
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def vq_model(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "vq.anomalia"
    res = fit(table, out, "vqvae", *VQ, *TINY)
    return out, res.output


@pytest.fixture(scope="module")
def ae_model(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "ae.anomalia"
    fit(table, out, "ae", "-p", "hidden=8,", "-p", "bottleneck=3", *TINY)
    return out


def test_fit_prints_codebook_usage_and_perplexity(vq_model):
    path, output = vq_model
    det = anomalia.load(path)
    assert det.code_usage_.sum() == 240
    ppl = perplexity(det.code_usage_)
    assert ppl > 5.0  # 8 clusters need several codes
    assert f"codebook: perplexity {ppl:.1f} of 8 codes" in output


def test_embed_keeps_ids_and_classes(tmp_path, table, ae_model):
    out = tmp_path / "codes.csv"
    res = run("embed", ae_model, table, "--label-column", "digit", "--out", out)
    assert res.exit_code == 0, res.output
    codes = pd.read_csv(out)
    raw = pd.read_csv(table)
    assert list(codes.columns) == ["key", "code_0", "code_1", "code_2", "digit"]
    np.testing.assert_array_equal(codes["key"], raw["key"])
    np.testing.assert_array_equal(codes["digit"], raw["digit"])
    expected = anomalia.load(ae_model).transform(raw[["a", "b", "c", "d"]])
    np.testing.assert_allclose(codes[["code_0", "code_1", "code_2"]], expected, rtol=1e-6)


def test_embed_codes_are_indices_within_the_codebook(tmp_path, table, vq_model):
    out = tmp_path / "codes.parquet"
    res = run("embed", vq_model[0], table, "--codes", "--out", out)
    assert res.exit_code == 0, res.output
    codes = pd.read_parquet(out)
    assert list(codes.columns) == ["key", "code_0"]
    assert pd.api.types.is_integer_dtype(codes["code_0"])
    assert codes["code_0"].between(0, 7).all() and codes["code_0"].nunique() >= 6


def test_conv_vqvae_spatial_codes_on_an_image_stack(tmp_path):
    images = np.random.default_rng(0).uniform(size=(40, 8, 8)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    model = tmp_path / "conv.anomalia"
    res = run(
        "fit",
        tmp_path / "images.npy",
        "-d",
        "vqvae",
        "-p",
        "spatial_codes=true",
        "-p",
        "channels=4,8",
        "-p",
        "n_codes=8",
        "-p",
        "code_dim=2",
        "-p",
        "epochs=2",
        "-o",
        model,
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "codes.csv"
    res = run("embed", model, tmp_path / "images.npy", "--codes", "-o", out)
    assert res.exit_code == 0, res.output
    codes = pd.read_csv(out)
    assert list(codes.columns) == ["row", *(f"code_{i}" for i in range(4))]  # 2x2 patches
    np.testing.assert_array_equal(codes["row"], np.arange(1, 41))  # counted from 1, as errors
    assert codes.iloc[:, 1:].to_numpy().min() >= 0 and codes.iloc[:, 1:].to_numpy().max() < 8
    picture = tmp_path / "usage.png"
    res = run("codebook", model, tmp_path / "images.npy", "--images", "3", "-o", picture)
    assert res.exit_code == 0, res.output
    assert picture.stat().st_size > 0 and "perplexity" in res.output


def test_image_folder_keeps_file_names_and_folder_labels(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(12):
        folder = tmp_path / "imgs" / ("round" if i % 2 else "square")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    model = tmp_path / "vae.anomalia"
    res = run(
        "fit",
        tmp_path / "imgs",
        "-d",
        "vae",
        "-p",
        "channels=4,",
        "-p",
        "bottleneck=2",
        "-p",
        "epochs=2",
        "-o",
        model,
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "codes.csv"
    res = run("embed", model, tmp_path / "imgs", "-o", out)
    assert res.exit_code == 0, res.output
    codes = pd.read_csv(out)
    assert list(codes.columns) == ["file", "code_0", "code_1", "label"]
    assert codes["file"].iloc[0] == "round/1.png"
    assert set(codes["label"]) == {"round", "square"}
    picture = tmp_path / "map.png"
    assert run("plot-codes", model, tmp_path / "imgs", "-o", picture).exit_code == 0
    assert picture.stat().st_size > 0


def test_plot_codes_and_codebook_pictures(tmp_path, table, vq_model, ae_model):
    for model, command in ((ae_model, "plot-codes"), (vq_model[0], "codebook")):
        out = tmp_path / f"{command}.png"
        extra = ["--label-column", "digit"] if command == "plot-codes" else []
        res = run(command, model, table, *extra, "-o", out)
        assert res.exit_code == 0, res.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("command", "model_kind", "data_kind", "extra", "match"),
    [
        ("embed", "gaussian", "table", [], "no bottleneck"),
        ("embed", "ae", "table", ["--codes"], "needs a vqvae"),
        ("embed", "ae", "wide", [], "columns"),
        ("embed", "ae", "images", [], "img.npy: holds an array of shape (5, 8, 8), but"),
        ("embed", "ae", "table", ["--label-column", "nope"], "nope"),
        ("plot-codes", "ae", "wide", [], "columns"),
        ("codebook", "ae", "table", [], "needs a vqvae"),
        ("codebook", "vq", "wide", [], "columns"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path, table, vq_model, ae_model, command, model_kind, data_kind, extra, match
):
    models = {"ae": ae_model, "vq": vq_model[0]}
    if model_kind == "gaussian":
        models["gaussian"] = tmp_path / "g.anomalia"
        fit(table, models["gaussian"], "gaussian")
    data = {"table": table, "wide": tmp_path / "wide.csv", "images": tmp_path / "img.npy"}
    frame = pd.read_csv(table)
    frame["e"] = 1.0
    frame.to_csv(data["wide"], index=False)
    np.save(data["images"], np.zeros((5, 8, 8)))
    out = tmp_path / ("codes.csv" if command == "embed" else "out.png")
    res = run(command, models[model_kind], data[data_kind], *extra, "-o", out)
    assert res.exit_code == 2, res.output
    assert "error:" in res.stderr and match in res.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(f".{out.name}*"))  # no temporary file left either


def test_unknown_output_type_is_refused_before_any_work(tmp_path, table, ae_model):
    res = run("embed", ae_model, table, "-o", tmp_path / "codes.txt")
    assert res.exit_code == 2 and ".csv or .parquet" in res.stderr
    res = run("plot-codes", ae_model, table, "-o", tmp_path / "codes.jpg")
    assert res.exit_code == 2 and ".png" in res.stderr


def test_codebook_maps_for_flat_rows_read_as_images(tmp_path, table):
    model = tmp_path / "flat.anomalia"
    fit(
        table,
        model,
        "vqvae",
        "-p",
        "image_shape=2,2",
        "-p",
        "spatial_codes=true",
        "-p",
        "channels=4,",
        "-p",
        "n_codes=8",
        "-p",
        "code_dim=2",
        "-p",
        "epochs=2",
    )
    out = tmp_path / "usage.png"
    res = run("codebook", model, table, "--images", "2", "-o", out)
    assert res.exit_code == 0, res.output
    assert out.exists()
    res = run("embed", model, table, "--codes", "-o", tmp_path / "codes.csv")
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(tmp_path / "codes.csv").columns) == ["key", "code_0"]  # 1x1 map
