"""``anomalia fit --detector disentangle`` and ``anomalia swap`` end to end, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import anomalia
from anomalia.cli.app import app

runner = CliRunner()
TINY = ("--param", "channels=4,8", "--param", "epochs=2", "--param", "batch_size=16")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def digits(tmp_path):
    """scikit-learn's 8x8 digits as an image stack, split into train / content / style files."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:200]
    paths = {}
    for name, part in {"train": images[:160], "content": images[160:170]}.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], part)
    paths["style"] = tmp_path / "style.npy"
    np.save(paths["style"], images[170:173])
    return paths


@pytest.fixture
def model(tmp_path, digits):
    path = tmp_path / "model.zip"
    res = run("fit", digits["train"], "--detector", "disentangle", *TINY, "--out", path)
    assert res.exit_code == 0, res.output
    return path


def _grid_cells(png):
    """The grid's size in cells, from the figure size (1 inch per image + margins, 120 dpi)."""
    with Image.open(png) as img:
        w, h = img.size
    return round(w / 120 - 0.6), round(h / 120 - 0.4)


def test_fit_and_swap_an_image_stack(tmp_path, digits, model):
    det = anomalia.load(model)
    assert det.name == "disentangle" and det.image_shape_ == (1, 8, 8)
    out = tmp_path / "grid.png"
    res = run("swap", model, digits["content"], digits["style"], "--out", out, "-n", "4")
    assert res.exit_code == 0, res.output
    assert "4 contents x 3 styles" in res.output
    assert _grid_cells(out) == (1 + 3, 1 + 4)  # columns: the styles; rows: the contents


def test_fit_and_swap_image_folders(tmp_path):
    from sklearn.datasets import load_digits

    images = (load_digits().images[:60] * 16).astype(np.uint8)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    path, out = tmp_path / "m.zip", tmp_path / "grid.png"
    res = run("fit", folder, "--detector", "disentangle", *TINY, "--out", path)
    assert res.exit_code == 0, res.output
    res = run("swap", path, folder, folder, "--out", out, "--n-images", "2")  # the long form of -n
    assert res.exit_code == 0, res.output
    assert _grid_cells(out) == (3, 3)


def _fails(res, out, message):
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))  # no temporary file left either


def test_a_model_that_is_not_disentangle_is_refused(tmp_path, digits):
    ae = tmp_path / "ae.zip"
    assert run("fit", digits["train"], "--detector", "conv-ae", *TINY, "--out", ae).exit_code == 0
    out = tmp_path / "grid.png"
    res = run("swap", ae, digits["content"], digits["style"], "--out", out)
    _fails(res, out, "is not a disentangle model (it holds AEDetector)")


def test_images_of_another_shape_are_refused(tmp_path, digits, model):
    other = tmp_path / "big.npy"
    np.save(other, np.zeros((3, 12, 12)))
    out = tmp_path / "grid.png"
    _fails(run("swap", model, digits["content"], other, "--out", out), out, "(1, 12, 12)")
    _fails(run("swap", model, other, digits["style"], "--out", out), out, "(1, 8, 8)")


def test_empty_data_and_bad_options_are_refused(tmp_path, digits, model):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 8, 8)))
    out = tmp_path / "grid.png"
    _fails(run("swap", model, empty, digits["style"], "--out", out), out, "no images")
    _fails(
        run("swap", model, digits["content"], digits["style"], "--out", out, "-n", "0"), out, "-n"
    )
    jpg = tmp_path / "grid.jpg"
    _fails(run("swap", model, digits["content"], digits["style"], "--out", jpg), jpg, ".png")
