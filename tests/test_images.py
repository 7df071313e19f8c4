"""Reading folders of images with Pillow."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anomalia import DataError, make_detector
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


def test_missing_folder_or_a_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_image_folder(tmp_path / "nope")
    _write(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="a.png is a file, not a folder of images"):
        read_image_folder(tmp_path / "a.png")


@pytest.fixture
def png_folders(tmp_path):
    """train/: 24 tiny grey PNGs of one pattern; test/{good,bad}/: 4 of it and 4 others."""
    rng = np.random.default_rng(0)
    pattern = np.zeros((8, 8))
    pattern[2:6, 2:6] = 200
    normal = np.clip(pattern + rng.normal(0, 8, size=(28, 8, 8)), 0, 255).astype(np.uint8)
    other = rng.integers(0, 255, size=(4, 8, 8), dtype=np.uint8)
    for folder, images in {
        "train": normal[:24],
        "test/good": normal[24:],
        "test/bad": other,
    }.items():
        for i, image in enumerate(images):
            _write(tmp_path / folder / f"{i:02d}.png", image)
    return tmp_path


TINY = {"channels": (4, 8), "epochs": 2, "batch_size": 8, "random_state": 0}


@pytest.mark.parametrize("name", ["conv-ae", "vae", "vqvae", "disentangle"])
def test_image_detectors_take_a_folder_path_as_the_cli_does(png_folders, name):
    train, test = png_folders / "train", str(png_folders / "test")
    by_path = make_detector(name, **TINY).fit(train)  # a Path; a str below
    images = read_image_folder(train).X
    by_array = make_detector(name, **TINY).fit(images)
    assert by_path.image_shape_ == (1, 8, 8)
    test_images = read_image_folder(test).X  # bad/00.png ... good/03.png, sorted
    np.testing.assert_array_equal(by_path.anomaly_score(test), by_array.anomaly_score(test_images))
    np.testing.assert_array_equal(by_path.predict(test), by_array.predict(test_images))
    assert by_path.reconstruct(test).shape == (8, 8, 8)  # grey images stay (n, H, W)
    assert by_path.feature_errors(test).shape == (8, 8, 8)
    for bad, match in ((png_folders / "nope", "image folder not found"),
                       (train / "00.png", "is a file, not a folder of images")):  # fmt: skip
        with pytest.raises(DataError, match=match):
            by_path.anomaly_score(bad)
    (png_folders / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        make_detector(name, **TINY).fit(png_folders / "empty")


def test_conv_ae_learns_from_a_folder_and_table_detectors_refuse_a_path(png_folders):
    det = make_detector("conv-ae", **{**TINY, "epochs": 30}).fit(str(png_folders / "train"))
    scores = det.anomaly_score(str(png_folders / "test"))
    assert scores[:4].min() > scores[4:].max()  # bad/ (noise) above good/ (the pattern)
    confidence = make_detector("confidence", epochs=2, random_state=0)
    confidence.fit(png_folders / "test", [1] * 4 + [0] * 4)  # classes: bad/, then good/
    assert confidence.image_shape_ == (1, 8, 8)
    with pytest.raises(DataError, match=r"takes a table \(rows x features\), not a path"):
        make_detector("knn").fit(str(png_folders / "train"))
