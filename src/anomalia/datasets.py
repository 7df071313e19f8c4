"""Datasets: built-in ones that need no file, and readers for well-known benchmark files.

Built-ins (from scikit-learn's bundled data, never downloaded):

* ``breast-cancer``: Wisconsin diagnostic breast cancer, 569 tumours x 30 features;
  malignant (212) = anomaly.
* ``digits``: 8x8 handwritten digits, 1,797 images x 64 pixel features; the digit
  ``normal_digit`` (default 0) is normal, every other digit an anomaly.

Readers for files you already have (nothing is downloaded): :func:`read_adbench`,
:func:`read_creditcard`, :func:`read_nsl_kdd`, :func:`read_kddcup99` and :func:`read_mnist`.
Labels follow the ADBench convention everywhere: ``y == 1`` is an anomaly. Where those files
are is :func:`data_dir`'s answer (``$ANOMALIA_DATA_DIR``, else the shared folder beside the
project checkout).
"""

from __future__ import annotations

import gzip
import inspect
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .errors import DataError
from .io import Dataset, TableSpec, _to_dataset, read_table

__all__ = [
    "CREDITCARD_FEATURES",
    "DATA_DIR_ENV",
    "KDD_CATEGORIES",
    "KDD_FEATURES",
    "available",
    "data_dir",
    "load",
    "load_dataset",
    "read_adbench",
    "read_creditcard",
    "read_kddcup99",
    "read_mnist",
    "read_nsl_kdd",
]

# --------------------------------------------------------------------------- built-ins


def _breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    X = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=list(bunch.feature_names))
    target = np.asarray(bunch.target)
    y = (target == 0).astype(np.int64)  # sklearn: 0 = malignant, 1 = benign
    labels = np.asarray(bunch.target_names)[target]
    spec = TableSpec(feature_names=list(X.columns))
    return Dataset(X=X, y=y, ids=None, labels=labels, name="breast-cancer", spec=spec)


def _digits(*, normal_digit: int = 0) -> Dataset:
    from sklearn.datasets import load_digits

    if (
        isinstance(normal_digit, bool)
        or not isinstance(normal_digit, int | np.integer)
        or not 0 <= normal_digit <= 9
    ):
        raise DataError(f"normal_digit must be an integer from 0 to 9, got {normal_digit!r}")
    bunch = load_digits()
    X = pd.DataFrame(np.asarray(bunch.data, dtype=np.float64), columns=list(bunch.feature_names))
    digits = np.asarray(bunch.target, dtype=np.int64)
    y = (digits != int(normal_digit)).astype(np.int64)
    spec = TableSpec(feature_names=list(X.columns))
    return Dataset(X=X, y=y, ids=None, labels=digits, name="digits", spec=spec)


#: Faces first, then non-faces, in scikit-image's ``lfw_subset`` (100 of each).
N_FACES = 100


def _faces() -> Dataset:
    try:
        from skimage.data import lfw_subset
    except ImportError:
        raise DataError(
            "the faces dataset comes with scikit-image: pip install 'anomalia[faces]'"
        ) from None
    X = np.asarray(lfw_subset(), dtype=np.float64)  # (200, 25, 25), pixels in [0, 1]
    y = (np.arange(len(X)) >= N_FACES).astype(np.int64)
    labels = np.where(y == 0, "face", "non-face")
    return Dataset(X=X, y=y, ids=None, labels=labels, name="faces", spec=TableSpec())


_BUILTINS: dict[str, tuple[str, Callable[..., Dataset]]] = {
    "breast-cancer": (
        "Wisconsin diagnostic breast cancer: 569 tumours x 30 features, malignant = anomaly",
        _breast_cancer,
    ),
    "digits": (
        "8x8 handwritten digits: 1,797 images x 64 pixels, digits other than "
        "normal_digit (default 0) = anomaly",
        _digits,
    ),
    "faces": (
        "25x25 grayscale images: 100 faces (Labeled Faces in the Wild) = normal, 100 "
        "non-faces = anomaly (scikit-image's lfw_subset; the faces extra)",
        _faces,
    ),
}


def available() -> dict[str, str]:
    """Return the built-in datasets: name -> one-line description."""
    return {name: desc for name, (desc, _) in _BUILTINS.items()}


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Load a built-in dataset as a :class:`~anomalia.io.Dataset` with named columns.

    Parameters
    ----------
    name : str
        One of :func:`available`: ``"breast-cancer"``, ``"digits"`` or ``"faces"``.
    **kwargs
        Options of that dataset: ``normal_digit`` (int 0-9, default 0) for ``"digits"``.

    Returns
    -------
    Dataset
        Float64 features (a table; ``faces``: an image stack of shape (200, 25, 25), pixels
        in [0, 1]), labels (1 = anomaly) and the original classes in ``labels``
        ("malignant"/"benign", the digit, or "face"/"non-face").

    Examples
    --------
    >>> ds = load_dataset("digits", normal_digit=3)
    >>> ds.X.shape, int((ds.y == 0).sum())
    ((1797, 64), 183)
    """
    if name not in _BUILTINS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(_BUILTINS)}")
    loader = _BUILTINS[name][1]
    params = [
        p.name
        for p in inspect.signature(loader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        takes = f"options: {', '.join(params)}" if params else "no options"
        raise DataError(f"dataset {name!r} got unknown option(s) {', '.join(unknown)}; {takes}")
    return loader(**kwargs)


def load(name: str, **kwargs: Any) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Load a built-in dataset as arrays.

    Parameters
    ----------
    name : str
        One of :func:`available`.
    **kwargs
        Options of that dataset, as in :func:`load_dataset`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
        (``faces``: (n_images, 25, 25), pixels in [0, 1])
    y : ndarray of shape (n_samples,), int64
        1 = anomaly, 0 = normal.

    Examples
    --------
    >>> X, y = load("breast-cancer")
    >>> X.shape, int(y.sum())
    ((569, 30), 212)
    """
    ds = load_dataset(name, **kwargs)
    assert ds.y is not None  # every built-in is labelled
    return np.asarray(ds.X, dtype=np.float64), ds.y


# --------------------------------------------------------------------------- where the real data is

#: Environment variable naming the folder of the real datasets (read by :func:`data_dir`).
DATA_DIR_ENV = "ANOMALIA_DATA_DIR"


def data_dir() -> Path:
    """The folder of the real datasets: the one place the package looks for them.

    ``$ANOMALIA_DATA_DIR`` when it is set; else ``shared/datasets`` beside the project
    checkout this package runs from (``../shared/datasets`` from the checkout's root,
    whatever the current directory; an installed copy should set the variable). The folder
    need not exist: readers say so when a file is missing.

    Returns
    -------
    Path
        E.g. ``data_dir() / "adbench"`` holds the ADBench ``.npz`` files.
    """
    given = os.environ.get(DATA_DIR_ENV)
    if given:
        return Path(given).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


# --------------------------------------------------------------------------- ADBench, credit card


def read_adbench(path: str | os.PathLike[str]) -> Dataset:
    """Read an ADBench ``.npz`` file (arrays ``X`` and ``y``, ``y == 1`` anomaly).

    Parameters
    ----------
    path : str or path-like
        E.g. ``adbench/4_breastw.npz``. Features are named ``x0 .. x{d-1}``.

    Returns
    -------
    Dataset
        Named after the file, e.g. ``"4_breastw"``.
    """
    path = Path(path)
    if not path.name.lower().endswith(".npz"):
        raise DataError(f"{path}: ADBench files are .npz archives")
    ds = read_table(path)
    if ds.y is None:
        raise DataError(f"{path}: no array 'y' (labels) in this ADBench file")
    return ds


#: Feature columns of the credit-card fraud data (ULB / Kaggle), in file order.
CREDITCARD_FEATURES: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")


def read_creditcard(path: str | os.PathLike[str]) -> Dataset:
    """Read the credit-card fraud CSV (columns Time, V1..V28, Amount, Class).

    Parameters
    ----------
    path : str or path-like
        ``creditcard.csv`` or a sample of it with the same columns; ``Class == 1`` is fraud.

    Returns
    -------
    Dataset
        30 float64 features; ``y`` = ``Class`` (1 = fraud = anomaly).
    """
    ds = read_table(path, label_column="Class", feature_names=list(CREDITCARD_FEATURES))
    if ds.y is None:
        raise DataError(f"{path}: no 'Class' column (1 = fraud) in this credit-card file")
    return ds


# --------------------------------------------------------------------------- KDD Cup 99, NSL-KDD

#: The 41 features of KDD Cup 99 and NSL-KDD, in file order (NSL-KDD "Field Names.csv").
KDD_FEATURES: tuple[str, ...] = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)

#: Fixed one-hot categories of the symbolic KDD features: the sorted union of the values in
#: NSL-KDD KDDTrain+_20Percent, KDDTest+ and KDD Cup 99 10 percent, so every file gives the
#: same columns. A value outside these lists gets all-zero dummies.
# fmt: off
KDD_CATEGORIES: dict[str, tuple[str, ...]] = {
    "protocol_type": ("icmp", "tcp", "udp"),
    "service": (
        "IRC", "X11", "Z39_50", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime",
        "discard", "domain", "domain_u", "echo", "eco_i", "ecr_i", "efs", "exec", "finger",
        "ftp", "ftp_data", "gopher", "hostnames", "http", "http_443", "http_8001", "imap4",
        "iso_tsap", "klogin", "kshell", "ldap", "link", "login", "mtp", "name",
        "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp", "nntp", "ntp_u",
        "other", "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i", "remote_job",
        "rje", "shell", "smtp", "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet",
        "tftp_u", "tim_i", "time", "urh_i", "urp_i", "uucp", "uucp_path", "vmnet", "whois",
    ),
    "flag": ("OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "S0", "S1", "S2", "S3", "SF", "SH"),
}
# fmt: on


def _read_kdd(path: str | os.PathLike[str], *, difficulty: bool, what: str) -> Dataset:
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    names = [*KDD_FEATURES, "label", *(["difficulty"] if difficulty else [])]
    dtype = dict.fromkeys((*KDD_CATEGORIES, "label"), str)
    try:
        frame = pd.read_csv(path, header=None, low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty") from None
    except (ValueError, OSError, EOFError) as exc:
        msg = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise DataError(f"{source}: cannot read it as {what} CSV: {msg}") from None
    if frame.shape[1] != len(names):
        raise DataError(
            f"{source}: {frame.shape[1]} columns, expected {len(names)} for {what} "
            f"(41 features, label{', difficulty' if difficulty else ''})"
        )
    frame.columns = names
    frame = frame.astype(dtype)
    frame["label"] = frame["label"].str.strip().str.removesuffix(".")
    spec = TableSpec(
        label_column="label",
        normal_value="normal",
        ignore_columns=("difficulty",) if difficulty else (),
        categorical="onehot",
        categories={c: list(v) for c, v in KDD_CATEGORIES.items()},
    )
    name = path.name.removesuffix(".gz").removesuffix(".txt")
    return _to_dataset(frame, spec, y=None, name=name, source=source)


def read_nsl_kdd(path: str | os.PathLike[str]) -> Dataset:
    """Read an NSL-KDD file (``KDDTrain+*.txt``, ``KDDTest+.txt``; no header).

    Parameters
    ----------
    path : str or path-like
        A file of 43 comma-separated columns: the 41 features (:data:`KDD_FEATURES`), the
        label ("normal" or an attack name) and a difficulty level (dropped).

    Returns
    -------
    Dataset
        38 numeric features plus one-hot ``protocol_type``, ``service`` and ``flag``
        against the fixed :data:`KDD_CATEGORIES` (119 columns, identical for every file);
        ``y`` = 1 for attacks; ``labels`` = the attack names ("normal" for normal rows).
    """
    return _read_kdd(path, difficulty=True, what="NSL-KDD")


def read_kddcup99(path: str | os.PathLike[str]) -> Dataset:
    """Read a KDD Cup 1999 file such as ``kddcup.data_10_percent.gz`` (no header).

    Parameters
    ----------
    path : str or path-like
        A (gzipped) file of 42 comma-separated columns: the 41 features
        (:data:`KDD_FEATURES`) and the label ending in a dot ("normal.", "smurf.", ...).

    Returns
    -------
    Dataset
        The same 119 columns as :func:`read_nsl_kdd`; ``y`` = 1 unless the label is
        "normal."; ``labels`` = the labels without their final dot.
    """
    return _read_kdd(path, difficulty=False, what="KDD Cup 99")


# --------------------------------------------------------------------------- MNIST

_IDX_IMAGES = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS = 0x00000801  # unsigned bytes, 1 dimension


def _read_idx(path: str | os.PathLike[str], magic: int, what: str) -> NDArray[np.uint8]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read it: {exc}") from None
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        shown = "none" if found is None else f"{found:#010x}"
        raise DataError(
            f"{path}: not an IDX {what} file (magic number {shown}, expected {magic:#010x})"
        )
    if len(raw) < head:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) != head + int(np.prod(dims)):
        raise DataError(
            f"{path}: {len(raw) - head} data bytes, but the header announces shape {dims}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims).copy()


def read_mnist(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Read MNIST images and labels from the original IDX files (gzipped or not).

    Parameters
    ----------
    images_path : str or path-like
        E.g. ``t10k-images-idx3-ubyte.gz`` (magic number 2051).
    labels_path : str or path-like
        E.g. ``t10k-labels-idx1-ubyte.gz`` (magic number 2049).

    Returns
    -------
    images : ndarray of shape (n, 28, 28), uint8
        Grey levels 0-255.
    labels : ndarray of shape (n,), int64
        The digits 0-9.
    """
    images = _read_idx(images_path, _IDX_IMAGES, "images")
    labels = _read_idx(labels_path, _IDX_LABELS, "labels").astype(np.int64)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels
