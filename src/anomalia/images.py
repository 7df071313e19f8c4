"""Reading images: a folder of PNG/JPEG files, or 3-D / 4-D arrays in .npy / .npz files.

A folder's images are read in sorted order. Images directly in the folder are unlabelled; images
in sub-folders take the sub-folder's name as their label (``test/good/*.png``,
``test/defect/*.png``), turned into 0/1 with ``normal_value="good"`` or ``anomaly_value=...``.
Grey images give an (n, H, W) array, colour images (n, 3, H, W); all must share one size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .errors import DataError
from .io import Dataset, TableSpec, _labels

#: File endings read as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` and of its sub-folders (one level: the labels), sorted."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files += [p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _load(path: Path) -> NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            grey = img.mode in ("L", "1", "I;16", "I", "F", "LA")
            return np.asarray(img.convert("L" if grey else "RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: cannot read it as an image ({exc})") from None


def read_image_folder(
    path: str | os.PathLike[str], spec: TableSpec | None = None, **spec_fields: Any
) -> Dataset:
    """Read every image of a folder (and of its sub-folders, whose names are labels).

    Parameters
    ----------
    path : str or path-like
        The folder.
    spec : TableSpec, optional
        Only ``anomaly_value`` / ``normal_value`` apply: which sub-folder name means anomaly
        or normal.
    **spec_fields
        Overrides of ``spec`` fields.

    Returns
    -------
    Dataset
        ``X``: uint8 array (n, H, W) for grey images or (n, 3, H, W) for colour images,
        in the order of the files' paths relative to the folder (sorted);
        ``ids``: file paths relative to the folder; ``labels``: sub-folder names (or None);
        ``y``: 0/1 when labels and a normal/anomaly value are known.
    """
    fields = {**(spec.to_dict() if spec else {}), **spec_fields}
    anomaly_value, normal_value = fields.get("anomaly_value"), fields.get("normal_value")
    folder = Path(path)
    if folder.is_file():
        raise DataError(
            f"{folder} is a file, not a folder of images: give the folder that holds the "
            "images (a table: read it with anomalia.io.read_table(path).X)"
        )
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    files = image_files(folder)
    if not files:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    arrays = [_load(f) for f in files]
    colour = any(a.ndim == 3 for a in arrays)
    if colour:
        arrays = [np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        arrays = [a.transpose(2, 0, 1) for a in arrays]
    shape = arrays[0].shape
    for f, a in zip(files, arrays, strict=True):
        if a.shape != shape:
            raise DataError(
                f"{f}: image size {a.shape[-2:]} differs from {shape[-2:]} "
                f"of {files[0].name}; resize the images to one size"
            )
    rel = [f.relative_to(folder) for f in files]
    labelled = [len(r.parts) > 1 for r in rel]
    labels = y = None
    if all(labelled):
        labels = np.array([r.parts[0] for r in rel], dtype=object)
        if anomaly_value is not None or normal_value is not None:
            label_spec = TableSpec(
                label_column="folder", anomaly_value=anomaly_value, normal_value=normal_value
            )
            y, labels = _labels(pd.Series(labels, name="folder"), label_spec, str(folder))
    elif any(labelled):
        raise DataError(f"{folder}: mixes images at the top level with images in sub-folders")
    ids = pd.Series([r.as_posix() for r in rel], name="file")
    return Dataset(
        X=np.stack(arrays), y=y, ids=ids, labels=labels, name=folder.name, spec=TableSpec()
    )
