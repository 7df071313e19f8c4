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
import io
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sklearn.base import BaseEstimator

from .._utils.files import atomic_output
from ..errors import AnomaliaError, ModelFileError
from . import _schema
from . import _sklearn as sk

__all__ = ["KEY_ENV", "MAX_BYTES_ENV", "load", "load_model", "read_key", "save", "to_bytes"]

FORMAT = "anomalia-model"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
SIGNATURE = "signature.hmac"

#: Environment variable holding the signing key (text), used when no key is passed.
KEY_ENV = "ANOMALIA_MODEL_KEY"
#: Environment variable raising or lowering the ceiling on a model's decompressed bytes.
MAX_BYTES_ENV = "ANOMALIA_MAX_MODEL_BYTES"
#: Default ceiling on the decompressed bytes of all members together (1 GiB).
DEFAULT_MAX_BYTES = 2**30
MAX_MANIFEST_BYTES = 64 * 2**20
MAX_MEMBERS = 10_000
MIN_KEY_BYTES = 16
# deflate compresses at most ~1032:1; a large member near that ratio is a bomb, not a model
_BOMB_RATIO, _BOMB_SIZE = 500, 64 * 2**20
_SIGN_CONTEXT = b"anomalia-model-signature-v2\0"


def _skops() -> Any:
    import skops.io  # imported lazily: skops imports torch, which would slow `anomalia --help`

    return skops.io


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


def _signature(key: bytes, manifest: bytes) -> bytes:
    return hmac.new(key, _SIGN_CONTEXT + manifest, hashlib.sha256).hexdigest().encode()


# -- writing ---------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    """JSON-encode parameters and attributes, keeping tuples distinguishable from lists."""
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a model manifest")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _versions() -> dict[str, str]:
    import sklearn

    from .._version import __version__

    out = {"anomalia": __version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out


def _is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a torch module can only exist if torch was imported
    return torch is not None and isinstance(value, torch.nn.Module)


_CLASSIFIER_REFUSAL = "use the built-in network or a linear or kernel classifier"


def _foreign(
    key: str, value: BaseEstimator, trusted: frozenset[str] = frozenset(), remedy: str = ""
) -> bytes:
    """An estimator through skops, refused unless skops trusts every type in it by default
    or ``trusted`` (the detector's fixed allow-list) names it."""
    try:
        blob = _skops().dumps(value)
    except Exception as exc:  # e.g. torch tensors, generators: skops cannot store them
        raise AnomaliaError(
            f"cannot save {key} ({type(value).__name__}): skops cannot store it without "
            f"pickle ({type(exc).__name__}: {str(exc).strip().splitlines()[0]:.100})"
            + (f"; {remedy}" if remedy else "")
        ) from None
    untrusted = sorted(set(_skops().get_untrusted_types(data=blob)) - trusted)
    if untrusted:
        raise AnomaliaError(
            f"cannot save {key} ({type(value).__name__}): it holds {', '.join(untrusted)}, "
            "compiled structures or code a model file cannot carry safely; "
            + (remedy or _CLASSIFIER_REFUSAL)
        )
    return blob


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


def _pack(detector: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One detector's manifest entries and container members (members of an ensemble nest)."""
    from ..base import BaseDetector

    arrays: dict[str, np.ndarray] = {}
    attributes: dict[str, Any] = {}
    object_arrays: dict[str, Any] = {}
    sklearn_parts: dict[str, Any] = {}
    modules: list[str] = []
    nested: dict[str, list[dict[str, Any]]] = {}
    members: dict[str, bytes] = {}
    for key, value in vars(detector).items():
        if not key.endswith("_") or key.startswith("_"):
            continue
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                object_arrays[key] = _encode(value.tolist())
            else:
                arrays[key] = np.ascontiguousarray(value)
        elif isinstance(value, list) and value and all(isinstance(v, BaseDetector) for v in value):
            nested[key] = []
            for i, sub in enumerate(value):
                part, sub_members = _pack(sub)
                nested[key].append(part)
                members.update({f"nested/{key}/{i}/{n}": b for n, b in sub_members.items()})
        elif sk.can_encode(value):
            sklearn_parts[key], part_arrays = sk.encode(value)
            arrays.update(
                {f"sklearn/{key}/{n}": np.ascontiguousarray(a) for n, a in part_arrays.items()}
            )
        elif isinstance(value, BaseEstimator):
            trusted, remedy = detector.skops_trusted, detector.skops_refusal
            members[f"sklearn/{key}.skops"] = _foreign(key, value, trusted, remedy)
        elif _is_module(value):
            modules.append(key)
            for name, tensor in value.state_dict().items():
                arrays[f"{key}/{name}"] = tensor.detach().cpu().contiguous().numpy().copy()
        else:
            try:
                attributes[key] = _encode(value)
            except TypeError as exc:
                raise AnomaliaError(f"cannot save attribute {key}: {exc}") from None
    params = detector.get_params(deep=False)
    for key, value in params.items():  # estimator parameters, e.g. a user's classifier
        if isinstance(value, BaseEstimator):
            members[f"sklearn/params/{key}.skops"] = _foreign(key, value)
    params = {k: v for k, v in params.items() if not isinstance(v, BaseEstimator)}
    members[ARRAYS] = st_save(arrays)
    part = {
        "detector": detector.name,
        "params": _encode(params),
        "attributes": attributes,
        "object_arrays": object_arrays,
        "modules": modules,
        "sklearn": sklearn_parts,
        "nested": nested,
    }
    return part, members


def to_bytes(
    detector: Any, *, metadata: dict[str, Any] | None = None, key: bytes | None = None
) -> bytes:
    """The model file of a fitted detector, in memory (see :func:`save`)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector)
    if not getattr(detector, "name", ""):
        raise AnomaliaError(f"{type(detector).__name__} is not a registered anomalia detector")
    if key is not None and len(key) < MIN_KEY_BYTES:
        raise AnomaliaError(f"a signing key needs at least {MIN_KEY_BYTES} bytes")
    part, members = _pack(detector)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **part,
        "metadata": metadata or {},  # plain JSON: tuples come back as lists
        "versions": _versions(),
        "sizes": {name: len(blob) for name, blob in members.items()},
        "sha256": {name: hashlib.sha256(blob).hexdigest() for name, blob in members.items()},
    }
    try:
        raw = json.dumps(manifest, indent=1, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise AnomaliaError(f"cannot save the model: {exc}") from None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, raw)
        for name, blob in members.items():
            zf.writestr(name, blob)
        if key is not None:
            zf.writestr(SIGNATURE, _signature(key, raw))
    return buf.getvalue()


def save(
    detector: Any,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    key: bytes | None = None,
) -> None:
    """Write a fitted detector to ``path`` atomically (see the module docstring).

    Parameters
    ----------
    detector : fitted anomalia detector
    path : str or path-like
        Destination file (permissions follow the umask, as for every output).
    metadata : dict, optional
        JSON-able extra information kept in the manifest (e.g. how to read data).
    key : bytes, optional
        Signing key (at least 16 bytes): adds an HMAC-SHA256 signature that
        :func:`load` with the same key verifies. See :func:`read_key`.
    """
    blob = to_bytes(detector, metadata=metadata, key=key)
    atomic_output(path, lambda tmp: tmp.write_bytes(blob))


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
    detector._check_restored()  # state the probe score does not use (e.g. for partial_fit)
    return detector


def _probe(detector: Any) -> None:
    """Score one all-zero row: a model that cannot is refused at load, not at first use."""
    n = int(detector.n_features_in_)
    if n > 2**24:
        raise ModelFileError(f"the model claims {n} features per row")
    shape = getattr(detector, "image_shape_", None)
    X = np.zeros((1, *shape) if shape else (1, n))
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
