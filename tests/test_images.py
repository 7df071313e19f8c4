"""Reading folders of images with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anomalia import DataError
from anomalia.images import read_image_folder


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_flat_folder_of_grey_pngs(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, size=(3, 6, 7), dtype=np.uint8)
    for i, a in enumerate(imgs):
        _write(tmp_path / f"img{i}.png", a)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = read_image_folder(tmp_path)
    assert ds.X.shape == (3, 6, 7)
    np.testing.assert_array_equal(ds.X, imgs)
    assert ds.ids.tolist() == ["img0.png", "img1.png", "img2.png"]
    assert ds.y is None


def test_subfolders_are_labels(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    _write(tmp_path / "good" / "a.png", a)
    _write(tmp_path / "good" / "b.png", a)
    _write(tmp_path / "defect" / "c.png", a + 200)
    ds = read_image_folder(tmp_path, normal_value="good")
    assert ds.ids.tolist() == ["defect/c.png", "good/a.png", "good/b.png"]
    assert ds.y.tolist() == [1, 0, 0]


def test_colour_images_are_channels_first(tmp_path):
    _write(tmp_path / "c.png", np.zeros((5, 6, 3), np.uint8))
    _write(tmp_path / "g.png", np.zeros((5, 6), np.uint8))
    assert read_image_folder(tmp_path).X.shape == (2, 3, 5, 6)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda p: None, "no image files"),
        (
            lambda p: (
                _write(p / "a.png", np.zeros((4, 4), np.uint8)),
                _write(p / "b.png", np.zeros((5, 4), np.uint8)),
            ),
            "differs",
        ),
        (lambda p: (p / "bad.png").write_bytes(b"not a png"), "cannot read it as an image"),
    ],
    ids=["empty", "sizes", "corrupt"],
)
def test_bad_folders(tmp_path, setup, match):
    setup(tmp_path)
    with pytest.raises(DataError, match=match):
        read_image_folder(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_image_folder(tmp_path / "nope")
