"""Writing model files: a detector's parameters and fitted attributes into the container
:mod:`anomalia.persistence` describes (manifest, safetensors arrays, skops members, an optional
HMAC signature).

It knows detectors only by their attributes (``vars``), never by class, so
:meth:`anomalia.base.BaseDetector.save` can call it without an import circle: reading, which
must name classes (the registry), lives in the package's ``__init__``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import sys
import zipfile
from typing import Any

import numpy as np
from safetensors.numpy import save as st_save
from sklearn.base import BaseEstimator

from .._utils.files import atomic_output
from ..errors import AnomaliaError
from . import _sklearn as sk

FORMAT = "anomalia-model"


FORMAT_VERSION = 2


MANIFEST = "manifest.json"


ARRAYS = "arrays.safetensors"


SIGNATURE = "signature.hmac"


MIN_KEY_BYTES = 16


_SIGN_CONTEXT = b"anomalia-model-signature-v2\0"


_CLASSIFIER_REFUSAL = "use the built-in network or a linear or kernel classifier"


def _skops() -> Any:
    import skops.io  # imported lazily: skops imports torch, which would slow `anomalia --help`

    return skops.io


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


def _pack(detector: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One detector's manifest entries and container members (members of an ensemble nest)."""
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
        elif isinstance(value, list) and value and all(_is_detector(v) for v in value):
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


def _is_detector(value: Any) -> bool:
    """An anomalia detector (an ensemble's member), told by its interface, not its class."""
    return isinstance(value, BaseEstimator) and callable(getattr(value, "anomaly_score", None))
