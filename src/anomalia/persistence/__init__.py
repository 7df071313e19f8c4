"""Saving and loading detectors without pickle, safely from any source.

A model file is a zip container:

* ``manifest.json`` -- format name and version, anomalia and library versions, detector name
  and parameters, JSON-able fitted attributes (threshold, feature names, ...), user metadata
  (e.g. how to read data), the byte size and SHA-256 of every other member, and the specs of
  the scikit-learn parts.
* ``arrays.safetensors`` -- every fitted numpy array, every torch module's state dict, and
  the arrays of the scikit-learn parts (see :mod:`anomalia.persistence._sklearn`).
* ``sklearn/<attribute>.skops`` -- only for a user's own scikit-learn classifier, read with
  skops' default trusted types and nothing more, and for a wrapped PyOD detector
  (``pyod:NAME``), read with those and the fixed allow-list of its class
  (:attr:`~anomalia.base.BaseDetector.skops_trusted`): a file holding any other type is
  refused before skops builds anything.
* ``signature.hmac`` -- optional: HMAC-SHA256 of the manifest under a secret key. The
  manifest holds the digest of every other member, so the signature covers them all.

Loading never unpickles, never imports a name taken from the file, and lets nothing from the
file reach compiled code unvalidated. In order: the member list and sizes are compared with
the manifest and with size ceilings before any member is decompressed (no decompression
bombs); the manifest is checked against a schema (:mod:`anomalia.persistence._schema`); the
signature, when a key is given; every member's SHA-256; every array's dtype, shape and
finiteness; the detector's parameters (its own checks); tree and neighbour structures are
validated or rebuilt from plain rows; networks are built on PyTorch's meta device and must
match the stored shapes exactly before any memory is allocated; the state that only
``partial_fit`` reads (running samples, streaming moments, optimiser state) is checked by
the detector's ``_check_restored``; last, the rebuilt model scores a probe row. Any
failure is a :class:`~anomalia.errors.ModelFileError`.

What the digests detect: accidental corruption (a truncated download, a flipped bit).
What only a signature detects: a deliberate edit, since an attacker can recompute digests
but not the HMAC without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from ..errors import AnomaliaError, ModelFileError
from . import _schema
from . import _sklearn as sk
from ._write import (
    ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MIN_KEY_BYTES,
    SIGNATURE,
    _signature,
    _skops,
    save,
    to_bytes,
)

__all__ = ["KEY_ENV", "MAX_BYTES_ENV", "load", "load_model", "read_key", "save", "to_bytes"]


#: Environment variable holding the signing key (text), used when no key is passed.
KEY_ENV = "ANOMALIA_MODEL_KEY"
#: Environment variable raising or lowering the ceiling on a model's decompressed bytes.
MAX_BYTES_ENV = "ANOMALIA_MAX_MODEL_BYTES"
#: Default ceiling on the decompressed bytes of all members together (1 GiB).
DEFAULT_MAX_BYTES = 2**30
MAX_MANIFEST_BYTES = 64 * 2**20
MAX_MEMBERS = 10_000
# deflate compresses at most ~1032:1; a large member near that ratio is a bomb, not a model
_BOMB_RATIO, _BOMB_SIZE = 500, 64 * 2**20


# -- keys ------------------------------------------------------------------------------------
def read_key(path: str | os.PathLike[str] | None = None) -> bytes | None:
    """The signing key: the bytes of the file ``path``, else ``$ANOMALIA_MODEL_KEY``, else None.

    Surrounding whitespace (a trailing newline) is dropped. A key shorter than 16 bytes is
    refused: an HMAC is only as strong as its key.
    """
    if path is not None:
        try:
            key = Path(path).read_bytes().strip()
        except OSError as exc:
            raise AnomaliaError(f"cannot read key file {path}: {exc.strerror or exc}") from None
        source = f"key file {path}"
    elif os.environ.get(KEY_ENV):
        key, source = os.environ[KEY_ENV].strip().encode(), f"${KEY_ENV}"
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise AnomaliaError(f"{source} holds {len(key)} bytes; a signing key needs at least 16")
    return key


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _load_foreign(name: str, blob: bytes, trusted: frozenset[str]) -> Any:
    """A skops member, only if every type skops does not trust by default is in ``trusted``
    (a fixed allow-list from anomalia's code, never a list the file gives)."""
    untrusted = sorted(set(_skops().get_untrusted_types(data=blob)) - trusted)
    if untrusted:
        raise ModelFileError(
            f"member {name} holds {', '.join(untrusted)[:200]}: types anomalia never loads "
            "(edited file?)"
        )
    return _skops().loads(blob, trusted=sorted(trusted))


# -- reading ---------------------------------------------------------------------------------
def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, never more than ``limit`` decompressed."""
    if info.flag_bits & 0x1:
        raise ModelFileError(f"member {info.filename} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"member {info.filename} uses an unexpected compression")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"member {info.filename} is larger than declared")
    return data


def _parse_manifest(raw: bytes, path: Path) -> dict[str, Any]:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    try:
        manifest = json.loads(raw, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path}: the manifest is not valid JSON (file corrupted?)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an anomalia model (wrong format marker)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format version {version!r:.20}; this anomalia reads version "
            f"{FORMAT_VERSION} (save the model again with a matching anomalia version)"
        )
    try:
        return _schema.check_manifest(manifest)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


def _max_bytes(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    text = os.environ.get(MAX_BYTES_ENV)
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        return int(text)
    except ValueError:
        raise AnomaliaError(f"${MAX_BYTES_ENV} must be a number of bytes, got {text!r}") from None


def _read_container(
    path: Path, key: bytes | None, max_bytes: int
) -> tuple[dict[str, Any], dict[str, bytes]]:
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ModelFileError(f"{path} holds {len(infos)} members: not an anomalia model")
        by_name = {i.filename: i for i in infos}
        if len(by_name) != len(infos):
            raise ModelFileError(f"{path}: a member name appears twice (tampered?)")
        if MANIFEST not in by_name:
            raise ModelFileError(f"{path} is not an anomalia model (no {MANIFEST})")
        raw = _read_member(zf, by_name[MANIFEST], MAX_MANIFEST_BYTES)
        manifest = _parse_manifest(raw, path)
        sizes = manifest["sizes"]
        if set(by_name) - {MANIFEST, SIGNATURE} != set(sizes):
            raise ModelFileError(
                f"{path}: the list of members does not match the manifest (tampered?)"
            )
        if sum(sizes.values()) > max_bytes:
            raise ModelFileError(
                f"{path}: the model's members hold {sum(sizes.values())} bytes, above the "
                f"ceiling of {max_bytes} (raise ${MAX_BYTES_ENV} for a model this large)"
            )
        for name, size in sizes.items():
            info = by_name[name]
            if info.file_size != size:
                raise ModelFileError(f"{path}: member {name} is not the size the manifest says")
            if size > _BOMB_SIZE and size > _BOMB_RATIO * max(info.compress_size, 1):
                raise ModelFileError(f"{path}: member {name} is a decompression bomb")
        if key is not None:
            if SIGNATURE not in by_name:
                raise ModelFileError(f"{path} is not signed, and a signature is required")
            stored = _read_member(zf, by_name[SIGNATURE], 128)
            if not hmac.compare_digest(stored, _signature(key, raw)):
                raise ModelFileError(
                    f"{path}: the signature does not match (wrong key, or the file was edited)"
                )
        blobs = {name: _read_member(zf, by_name[name], size) for name, size in sizes.items()}
    for name, blob in blobs.items():
        if len(blob) != sizes[name] or hashlib.sha256(blob).hexdigest() != manifest["sha256"][name]:
            raise ModelFileError(f"{path}: checksum mismatch for {name} (corrupted or modified)")
    return manifest, blobs


def _arrays(blob: bytes | None) -> dict[str, np.ndarray]:
    if blob is None:
        raise ModelFileError(f"member {ARRAYS} is missing")
    try:
        arrays = st_load(blob)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{ARRAYS} is not a valid safetensors file: {exc}") from None
    for name, arr in arrays.items():
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ModelFileError(f"array {name} holds NaN or infinity")
    return arrays


def _unpack(part: dict[str, Any], blobs: dict[str, bytes]) -> Any:
    """Rebuild one detector from its manifest entries and members (see :func:`_pack`)."""
    from ..registry import available_detectors, detector_class, make_detector

    if part["detector"] not in available_detectors():  # a name only, never "pyod:NAME"
        raise ModelFileError(f"unknown detector {part['detector']!r:.60}")
    cls = detector_class(part["detector"])
    params = _decode(part["params"])
    skops_blobs: dict[str, tuple[str, bytes]] = {}
    nested_blobs = {n for n in blobs if n.startswith("nested/")}
    for name, blob in blobs.items():
        if name == ARRAYS or name in nested_blobs:
            continue
        key = name.removeprefix("sklearn/").removesuffix(".skops")
        if not name.startswith("sklearn/") or not name.endswith(".skops"):
            raise ModelFileError(f"member {name} belongs to no part of the model")
        skops_blobs[key] = (name, blob)
    for key in [k for k in skops_blobs if k.startswith("params/")]:  # skops' defaults only
        params[key.removeprefix("params/")] = _load_foreign(*skops_blobs.pop(key), frozenset())
    detector = make_detector(part["detector"], **params)
    detector._check_all_params()  # before any fitted part loads (e.g. PyOD is installed)
    foreign = {k: _load_foreign(*nb, cls.skops_trusted) for k, nb in skops_blobs.items()}
    for key, value in {**part["attributes"], **foreign}.items():
        _schema.attribute_name(key, "attributes")
        if hasattr(type(detector), key):
            raise ModelFileError(f"attribute {key} would replace a method of the detector")
        setattr(detector, key, _decode(value) if key in part["attributes"] else value)
    for key, value in part["object_arrays"].items():
        setattr(detector, key, np.asarray(_decode(value), dtype=object))
    state: dict[str, dict[str, np.ndarray]] = {m: {} for m in part["modules"]}
    sk_arrays: dict[str, dict[str, np.ndarray]] = {a: {} for a in part["sklearn"]}
    for key, arr in _arrays(blobs.get(ARRAYS)).items():
        head, _, sub = key.partition("/")
        if head == "sklearn" and sub.partition("/")[0] in sk_arrays:
            attr, _, name = sub.partition("/")
            sk_arrays[attr][name] = arr
        elif sub and head in state:
            state[head][sub] = arr
        elif not sub and _schema.attribute_name(key, "arrays") and not hasattr(type(detector), key):
            setattr(detector, key, arr)
        else:
            raise ModelFileError(f"array {key} belongs to no part of the model")
    for attr, spec in part["sklearn"].items():
        try:
            setattr(detector, attr, sk.decode(spec, sk_arrays[attr]))
        except ModelFileError as exc:
            raise ModelFileError(f"{attr}: {exc}") from None
    for attr, tensors in state.items():
        setattr(detector, attr, detector._restore_module(attr, tensors))
    for key, parts in part["nested"].items():
        subs = []
        for i, sub_part in enumerate(parts):
            prefix = f"nested/{key}/{i}/"
            subs.append(
                _unpack(
                    sub_part,
                    {n.removeprefix(prefix): b for n, b in blobs.items() if n.startswith(prefix)},
                )
            )
        setattr(detector, key, subs)
    if any(not any(n.startswith(f"nested/{k}/") for k in part["nested"]) for n in nested_blobs):
        raise ModelFileError("a nested member belongs to no ensemble member")
    scores = getattr(detector, "decision_scores_", None)  # absent from older files
    if scores is not None and not (
        isinstance(scores, np.ndarray)
        and scores.dtype == np.float64
        and scores.ndim == 1
        and scores.size
    ):
        raise ModelFileError("decision_scores_ must be a non-empty 1-D float64 array")
    detector._check_restored_contamination()  # contamination_ its training scores give
    detector._check_restored()  # state the probe score does not use (e.g. for partial_fit)
    return detector


def _probe(detector: Any) -> None:
    """Score one all-zero row: a model that cannot is refused at load, not at first use."""
    n = int(detector.n_features_in_)
    if n > 2**24:
        raise ModelFileError(f"the model claims {n} features per row")
    shape = getattr(detector, "image_shape_", None)
    X = np.zeros((1, *shape) if shape else (1, n))
    if hasattr(detector, "_probe_input"):  # detectors of other inputs (texts) give their own
        X = detector._probe_input()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        score = detector.anomaly_score(X)
    if score.shape != (1,):
        raise ModelFileError(f"the model gives {score.shape} scores for one row")


def load_model(
    path: str | os.PathLike[str], *, key: bytes | None = None, max_bytes: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """Load a detector and its manifest (whose ``metadata`` holds what the saver added).

    ``key`` and ``max_bytes`` are those of :func:`load`.
    """
    path = Path(path)
    try:
        manifest, blobs = _read_container(path, key, _max_bytes(max_bytes))
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError):
        raise ModelFileError(
            f"{path} is not an anomalia model file, or it is truncated or corrupted"
        ) from None
    except Exception as exc:  # zlib.error, OSError, NotImplementedError, ...
        raise ModelFileError(f"cannot read model file {path}: {exc}") from None
    try:
        detector = _unpack(manifest, blobs)
        _probe(detector)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except RecursionError:
        raise ModelFileError(f"{path}: the model nests too deeply") from None
    except Exception as exc:  # anything the rebuilt model raises is the file's fault
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: cannot rebuild the model: {msg}") from None
    return detector, manifest


def load(
    path: str | os.PathLike[str], *, key: bytes | None = None, max_bytes: int | None = None
) -> Any:
    """Load a detector saved with :meth:`anomalia.base.BaseDetector.save`.

    Safe for files from anywhere (see the module docstring for every check).

    Parameters
    ----------
    path : str or path-like
        The model file.
    key : bytes, optional
        The signing key: the file must carry a valid signature made with it
        (:func:`read_key` reads one from a file or ``$ANOMALIA_MODEL_KEY``).
    max_bytes : int, optional
        Ceiling on the decompressed bytes of all members, in bytes; default
        ``$ANOMALIA_MAX_MODEL_BYTES`` or 1 GiB.

    Returns
    -------
    detector
        The fitted detector, giving the same scores as before saving.

    Raises
    ------
    anomalia.errors.ModelFileError
        The file is missing, not a model, truncated, tampered with, unsigned or wrongly
        signed when a key is given, too large, or of another format version.
    """
    return load_model(path, key=key, max_bytes=max_bytes)[0]
