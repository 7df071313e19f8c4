"""The manifest's schema: every key, type and range checked before anything is built.

The digests in the manifest cover the other members, not the manifest itself, so a hand
edit of the manifest (a threshold set to ``"abc"``, ``__dict__`` as an attribute name, a list
where an object belongs) must be refused here, with :class:`ModelFileError`, rather than
crash later while scoring.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import ModelFileError

#: Deepest nesting of lists and objects anywhere in a manifest.
MAX_DEPTH = 32
#: Deepest nesting of detectors in detectors (an ensemble's members hold none).
MAX_NESTING = 1

# fitted attributes are public names ending in "_" (scikit-learn's convention)
_ATTRIBUTE = re.compile(r"[a-z][a-z0-9_]{0,62}_")
_MEMBER = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")
_HEX64 = re.compile(r"[0-9a-f]{64}")

PART_KEYS = {"detector", "params", "attributes", "object_arrays", "modules", "sklearn", "nested"}
TOP_KEYS = PART_KEYS | {"format", "format_version", "metadata", "versions", "sizes", "sha256"}


def _fail(where: str, what: str) -> ModelFileError:
    return ModelFileError(f"the manifest's {where} {what} (edited or corrupted file)")


def check_json(value: Any, where: str, depth: int = 0) -> None:
    """Plain JSON only: finite numbers, string keys, at most :data:`MAX_DEPTH` levels."""
    if depth > MAX_DEPTH:
        raise _fail(where, f"is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for k, v in value.items():
            check_json(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for v in value:
            check_json(v, where, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, "holds NaN or infinity")
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise _fail(where, f"holds a {type(value).__name__}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"must be an object, not {type(value).__name__}")
    return value


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, "must be a list of names")
    return value


def attribute_name(name: str, where: str) -> str:
    if not _ATTRIBUTE.fullmatch(name):
        raise _fail(where, f"names an attribute {name!r:.40} that no detector has")
    return name


def _number(value: Any, where: str, *, integer: bool = False, low: float = -math.inf) -> None:
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= low:
        bound = f" >= {low}" if low > -math.inf else ""
        raise _fail(where, f"must be {'an integer' if integer else 'a number'}{bound}")


def _share(value: Any, where: str) -> None:
    """None, or a share of the training rows in (0, 0.5] (``contamination_``)."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 0.5
    ):
        raise _fail(where, "must be None or a number in (0, 0.5]")


#: Checks of the fitted attributes every detector has (the rest is checked by a probe score).
COMMON_ATTRIBUTES = {
    "threshold_": lambda v, w: _number(v, w),
    "n_features_in_": lambda v, w: _number(v, w, integer=True, low=1),
    "calibration_": lambda v, w: _object(v, w),
    "contamination_": lambda v, w: _share(v, w),
}


def check_part(part: Any, where: str = "model", depth: int = 0) -> None:
    """Structure of one detector's entries (nested ensembles recursively)."""
    part = _object(part, where)
    if depth > MAX_NESTING:
        raise _fail(where, f"nests ensembles deeper than {MAX_NESTING} levels")
    extra = set(part) - (TOP_KEYS if depth == 0 else PART_KEYS)
    missing = PART_KEYS - set(part)
    if extra or missing:
        raise _fail(where, f"has keys {sorted(extra)} / lacks {sorted(missing)}")
    if not isinstance(part["detector"], str):
        raise _fail(f"{where}.detector", "must be a name")
    _object(part["params"], f"{where}.params")
    for key in ("attributes", "object_arrays", "sklearn", "nested"):
        for name in _object(part[key], f"{where}.{key}"):
            attribute_name(name, f"{where}.{key}")
    for name, value in part["attributes"].items():
        if name in COMMON_ATTRIBUTES:
            COMMON_ATTRIBUTES[name](value, f"{where}.attributes.{name}")
    for name, value in part["object_arrays"].items():
        if not isinstance(value, list):
            raise _fail(f"{where}.object_arrays.{name}", "must be a list")
    names = part["object_arrays"].get("feature_names_in_")
    if names is not None and not all(isinstance(n, str) for n in names):
        raise _fail(f"{where}.feature_names_in_", "must be a list of strings")
    for name in _names(part["modules"], f"{where}.modules"):
        attribute_name(name, f"{where}.modules")
    for name, spec in part["sklearn"].items():
        _object(spec, f"{where}.sklearn.{name}")
    for name, parts in part["nested"].items():
        if not isinstance(parts, list) or not parts:
            raise _fail(f"{where}.nested.{name}", "must be a non-empty list")
        for i, sub in enumerate(parts):
            check_part(sub, f"{where}.nested.{name}[{i}]", depth + 1)


def check_manifest(manifest: Any) -> dict[str, Any]:
    """The whole manifest, after the format marker and version were checked."""
    check_json(manifest, "manifest")
    check_part(manifest)
    _object(manifest["metadata"], "metadata")
    for k, v in _object(manifest["versions"], "versions").items():
        if not isinstance(v, str):
            raise _fail(f"versions.{k}", "must be a string")
    sizes, digests = _object(manifest["sizes"], "sizes"), _object(manifest["sha256"], "sha256")
    if set(sizes) != set(digests):
        raise _fail("sizes", "do not list the same members as the digests")
    for name in digests:
        if not _MEMBER.fullmatch(name) or ".." in name.split("/"):
            raise _fail("sha256", f"names a member {name!r:.60} that is not a plain path")
        _number(sizes[name], f"sizes.{name}", integer=True, low=0)
        if not isinstance(digests[name], str) or not _HEX64.fullmatch(digests[name]):
            raise _fail(f"sha256.{name}", "is not a SHA-256 digest")
    return manifest
