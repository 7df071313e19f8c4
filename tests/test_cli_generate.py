"""anomalia compress / decompress / sample / interpolate end to end on tiny data."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import anomalia
from anomalia.cli.app import app
from anomalia.compression import MAGIC, compress, decompress

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["-p", "hidden=8,", "-p", "epochs=3", "-p", "batch_size=16"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A table with ids and an image stack, and tiny models fitted on them by the CLI."""
    root = tmp_path_factory.mktemp("generate")
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(120, 3)), columns=["amount", "age", "hour"])
    table.insert(0, "txn", np.arange(1000, 1120))
    table.to_csv(root / "table.csv", index=False)
    table.rename(columns={"amount": "price"}).to_csv(root / "other.csv", index=False)
    np.save(root / "images.npy", rng.random((24, 8, 8)))
    paths = {name: root / f"{name}.csv" for name in ("table", "other")}
    paths["images"] = root / "images.npy"
    fits = {
        "ae": ("table", ["-d", "ae", *TINY, "--id-column", "txn"]),
        "vae": ("table", ["-d", "vae", *TINY, "--id-column", "txn"]),
        "vqvae": ("table", ["-d", "vqvae", *TINY, "-p", "n_codes=8", "--id-column", "txn"]),
        "conv-vae": (
            "images",
            ["-d", "vae", "-p", "channels=4,8", "-p", "epochs=2", "-p", "batch_size=16"],
        ),
    }
    for name, (data, args) in fits.items():
        paths[name] = root / f"{name}.anomalia"
        res = run("fit", paths[data], "--out", paths[name], *args)
        assert res.exit_code == 0, res.output
    return paths


def test_compress_and_decompress_a_table(files, tmp_path):
    packed = tmp_path / "table.codes"
    res = run("compress", files["ae"], files["table"], "--out", packed)
    assert res.exit_code == 0, res.output
    assert "120 rows" in res.output and "bytes per row" in res.output and "PSNR" in res.output
    det = anomalia.load(files["ae"])
    table = pd.read_csv(files["table"])
    expected = decompress(det, packed.read_bytes())
    # the ratio is against the file as given, the error in the data's own units, per column
    ratio = files["table"].stat().st_size / packed.stat().st_size
    assert f"({files['table'].stat().st_size:,} bytes)" in res.output
    assert f"{ratio:.1f}x smaller" in res.output
    error = expected - table[["amount", "age", "hour"]].to_numpy()
    assert f"RMSE {np.sqrt(np.mean(error**2)):.4g}" in res.output
    worst = ["amount", "age", "hour"][int(np.argmax(np.sqrt(np.mean(error**2, axis=0))))]
    per_column = res.output.split("per column")[1]
    rows = [line for line in per_column.splitlines() if line.startswith("│")]
    assert rows[0].split("│")[1].strip() == worst  # worst first
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"decoded{suffix}"
        res = run("decompress", files["ae"], packed, "--out", out)
        assert res.exit_code == 0, res.output
        back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        assert list(back.columns) == ["txn", "amount", "age", "hour"]
        np.testing.assert_array_equal(back.txn, table.txn)
        np.testing.assert_allclose(back[["amount", "age", "hour"]], expected, rtol=1e-12)


def test_compress_and_decompress_images(files, tmp_path):
    packed = tmp_path / "images.codes"
    res = run("compress", files["conv-vae"], files["images"], "--out", packed, "--codec", "zlib")
    assert res.exit_code == 0, res.output
    assert "24 rows" in res.output
    res = run("decompress", files["conv-vae"], packed, "--out", tmp_path / "back.npy")
    assert res.exit_code == 0, res.output
    back = np.load(tmp_path / "back.npy")
    assert back.shape == (24, 8, 8)  # the shape of the compressed stack
    res = run("decompress", files["conv-vae"], packed, "--out", tmp_path / "back.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "back.png").read_bytes()[:8] == PNG


def test_sample(files, tmp_path):
    res = run("sample", files["vae"], "-n", 7, "--out", tmp_path / "rows.csv", "--seed", 3)
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert rows.shape == (7, 3) and list(rows.columns) == ["amount", "age", "hour"]
    np.testing.assert_allclose(rows, anomalia.load(files["vae"]).sample(7, random_state=3))
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / f"{name}.npy"
        res = run("sample", files["conv-vae"], "-n", 5, "--seed", seed, "--out", out)
        assert res.exit_code == 0, res.output
    a, b, c = (np.load(tmp_path / f"{name}.npy") for name in "abc")
    assert a.shape == (5, 1, 8, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    res = run("sample", files["conv-vae"], "-n", 8, "--out", tmp_path / "grid.png")
    assert res.exit_code == 0 and (tmp_path / "grid.png").read_bytes()[:8] == PNG


def test_interpolate_a_table(files, tmp_path):
    out = tmp_path / "path.csv"
    res = run("interpolate", files["ae"], files["table"], "--start", 2, "--end", 9)
    assert res.exit_code == 2  # --out is required
    res = run(
        "interpolate", files["ae"], files["table"], "--start", 2, "--end", 9, "--steps", 5,
        "--out", out,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    path = pd.read_csv(out)
    assert list(path.columns) == ["t", "amount", "age", "hour"] and len(path) == 5
    np.testing.assert_allclose(path.t, [0, 0.25, 0.5, 0.75, 1])
    # the ends of the path are the reconstructions of the two rows, counted from 1
    ends = pd.read_csv(files["table"]).iloc[[1, 8], 1:]
    recon = anomalia.load(files["ae"]).reconstruct(ends)
    np.testing.assert_allclose(path.iloc[[0, -1], 1:], recon, atol=1e-5)


def test_interpolate_images(files, tmp_path):
    args = ("interpolate", files["conv-vae"], files["images"], "--start", 1, "--end", 4)
    res = run(*args, "--steps", 6, "--out", tmp_path / "strip.npy")
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "strip.npy").shape == (6, 1, 8, 8)
    res = run(*args, "--steps", 6, "--out", tmp_path / "strip.png")
    assert res.exit_code == 0, res.output
    from PIL import Image

    with Image.open(tmp_path / "strip.png") as img:
        width, height = img.size
    assert width > 5 * height  # one row (and a title): the two inputs and 6 points between


def _with_version(blob, version):
    return blob[: len(MAGIC)] + struct.pack("<H", version) + blob[len(MAGIC) + 2 :]


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("sample-ae", "sample needs a vae model"),
        ("row-out-of-range", "has rows 1..120"),
        ("row-zero", "row 0 is out of range"),
        ("interpolate-vqvae", "needs an ae or vae model"),
        ("images-into-table-model", "images"),
        ("other-columns", "amount"),
        ("unknown-version", "version 9 is unknown"),
        ("other-model", "class AEDetector, not VAEDetector"),
        ("png-for-a-table", ".npy, .csv, .parquet"),
    ],
)
def test_errors_exit_2_without_output(files, tmp_path, case, match):
    out = tmp_path / ("out.png" if case == "png-for-a-table" else "out.npy")
    packed = tmp_path / "codes.bin"
    det = anomalia.load(files["ae"])
    blob = compress(det, pd.read_csv(files["table"]).iloc[:, 1:])
    packed.write_bytes(_with_version(blob, 9) if case == "unknown-version" else blob)
    args = {
        "sample-ae": ("sample", files["ae"]),
        "row-out-of-range": ("interpolate", files["ae"], files["table"], "--end", 121),
        "row-zero": ("interpolate", files["ae"], files["table"], "--start", 0),
        "interpolate-vqvae": ("interpolate", files["vqvae"], files["table"]),
        "images-into-table-model": ("compress", files["ae"], files["images"]),
        "other-columns": ("compress", files["ae"], files["other"]),
        "unknown-version": ("decompress", files["ae"], packed),
        "other-model": ("decompress", files["vae"], packed),
        "png-for-a-table": ("decompress", files["ae"], packed),
    }[case]
    res = run(*args, "--out", out)
    assert res.exit_code == 2, res.output
    assert "error:" in res.stderr and match in res.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["codes.bin"]  # no stray temporary file


def test_image_grids_have_titles(files, tmp_path, monkeypatch):
    import anomalia.plots

    drawn, save = {}, anomalia.plots.save_figure

    def keep(fig, path):
        drawn[path.name] = fig
        return save(fig, path)

    monkeypatch.setattr(anomalia.plots, "save_figure", keep)
    model = files["conv-vae"]
    assert run("sample", model, "-n", 8, "--seed", 2, "--out", tmp_path / "s.png").exit_code == 0
    packed = tmp_path / "images.codes"
    assert run("compress", model, files["images"], "--out", packed).exit_code == 0
    assert run("decompress", model, packed, "--out", tmp_path / "d.png").exit_code == 0
    args = ("interpolate", model, files["images"], "--start", 1, "--end", 3)
    assert run(*args, "--out", tmp_path / "i.png").exit_code == 0
    assert {name: fig.get_suptitle() for name, fig in drawn.items()} == {
        "s.png": "samples from the prior of conv-vae.anomalia, seed 2 (8 images)",
        "d.png": "decoded from images.codes (24 images)",
        "i.png": "conv-vae.anomalia: a straight line in code space from row 1 to row 3",
    }
