"""Lossy compression with an auto-encoder: store the bottleneck codes, decode them back.

:func:`compress` encodes rows or images with a fitted auto-encoder and quantises the codes to
8 bits per value (one offset and one step per code dimension, as float32); a VQ-VAE stores
its code indices instead (uint8, or uint16 beyond 256 codes), which lose nothing more than
the model itself. :func:`decompress` decodes them with the same model. Any fitted estimator
with ``transform`` and ``inverse_transform`` works (e.g. scikit-learn's PCA).

The file is a small versioned container (integers little-endian)::

    MAGIC          8 bytes  b"ANMLCODE"
    version        uint16   FORMAT_VERSION
    header size    uint32   bytes of the JSON header
    header         UTF-8 JSON: format, detector class, model fingerprint, n_rows, row_shape,
                   code_width, quantization, codec, payload_bytes, optional ids
    payload        payload_bytes, compressed with ``codec`` ("none", "zlib" or "lzma"):
                   uniform: offset float32[code_width], step float32[code_width],
                            codes uint8[n_rows, code_width]
                   index:   indices uint8 or uint16 [n_rows, code_width]

The fingerprint is a hash of the model's fitted arrays and weights, so decompressing with
another model fails with a clear :class:`~anomalia.errors.AnomaliaError`, as do a wrong magic,
an unknown version and a truncated or corrupted file.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._utils.files import atomic_output
from .errors import AnomaliaError

__all__ = [
    "CODECS",
    "FORMAT_VERSION",
    "MAGIC",
    "compress",
    "decompress",
    "dequantize",
    "fingerprint",
    "mse_psnr",
    "quantize",
    "read_header",
    "write_compressed",
]

#: The first 8 bytes of every compressed file.
MAGIC = b"ANMLCODE"
#: The container version written; reading refuses any other.
FORMAT_VERSION = 1
#: Compressions of the payload: none, zlib or lzma (``codec`` of :func:`compress`).
CODECS: tuple[str, ...] = ("none", "zlib", "lzma")
LEVELS = 255  # 8 bits per value
_PREFIX = struct.Struct("<HI")  # version, header size
_HEAD = len(MAGIC) + _PREFIX.size
_FIELDS = (
    "detector",
    "fingerprint",
    "n_rows",
    "row_shape",
    "code_width",
    "quantization",
    "codec",
    "payload_bytes",
)
_KINDS = ("uniform", "index")
#: Default ceiling on what one file may decode to (codes and float64 rows), in bytes.
MAX_BYTES = 4 * 2**30


def quantize(
    codes: ArrayLike,
) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.float32]]:
    """Quantise codes to 8 bits per value, uniformly between each dimension's min and max.

    Parameters
    ----------
    codes : array-like of shape (n_rows, code_width)
        Real-valued codes.

    Returns
    -------
    q : ndarray of uint8, shape (n_rows, code_width)
        Levels 0..255.
    low, step : ndarray of float32, shape (code_width,)
        Per-dimension offset and step: ``dequantize`` gives ``low + q * step``, within
        ``step / 2`` of every code value.

    Examples
    --------
    >>> q, low, step = quantize([[0.0, 1.0], [1.0, 1.0], [0.5, 1.0]])
    >>> q.tolist(), dequantize(q, low, step).round(3).tolist()
    ([[0, 0], [255, 0], [127, 0]], [[0.0, 1.0], [1.0, 1.0], [0.498, 1.0]])
    """
    z = np.asarray(codes, dtype=np.float64)
    low = z.min(axis=0).astype(np.float32)
    step = ((z.max(axis=0) - low) / LEVELS).astype(np.float32)
    scaled = (z - low) / np.where(step > 0, step, 1.0)
    return np.clip(np.rint(scaled), 0, LEVELS).astype(np.uint8), low, step


def dequantize(
    q: NDArray[np.uint8], low: NDArray[np.float32], step: NDArray[np.float32]
) -> NDArray[np.float64]:
    """Return the code values ``low + q * step`` of quantised codes, shape of ``q``."""
    return low.astype(np.float64) + q.astype(np.float64) * step.astype(np.float64)


def fingerprint(detector: Any) -> str:
    """A short hash of a fitted model's arrays and network weights (16 hex digits).

    Equal for a model and its saved-and-loaded copy; different after any refit.
    """
    h = hashlib.sha256(type(detector).__name__.encode())
    for key in sorted(vars(detector)):
        if not key.endswith("_") or key.startswith("_"):
            continue
        value = getattr(detector, key)
        if isinstance(value, np.ndarray) and value.dtype != object:
            h.update(key.encode() + np.ascontiguousarray(value).tobytes())
        elif callable(getattr(value, "state_dict", None)):  # a torch module
            for name, tensor in sorted(value.state_dict().items()):
                arr = tensor.detach().cpu().contiguous().numpy()
                h.update(f"{key}/{name}".encode() + arr.tobytes())
    return h.hexdigest()[:16]


def _is_vq(detector: Any) -> bool:
    return hasattr(detector, "decode_codes") and hasattr(detector, "codes")


def _check_decoder(detector: Any) -> None:
    if not (hasattr(detector, "transform") and hasattr(detector, "inverse_transform")):
        name = getattr(detector, "name", type(detector).__name__)
        raise AnomaliaError(
            f"compression needs a model with a decoder (ae, vae, vqvae); got {name!r}"
        )


def _pack(payload: bytes, codec: str) -> bytes:
    if codec == "zlib":
        return zlib.compress(payload, 9)
    if codec == "lzma":
        return lzma.compress(payload, preset=9)
    return payload


def _unpack(payload: bytes, codec: str, size: int) -> bytes:
    """Decompress ``payload``, never producing more than ``size`` bytes (no bombs)."""
    try:
        if codec == "zlib":
            unz = zlib.decompressobj()
            raw = unz.decompress(payload, size + 1)
            complete = unz.eof
        elif codec == "lzma":
            unx = lzma.LZMADecompressor()
            raw = unx.decompress(payload, size + 1)
            complete = unx.eof
        else:
            raw, complete = payload, True
    except (zlib.error, lzma.LZMAError, ValueError) as exc:
        raise AnomaliaError(f"the compressed payload is corrupted ({codec}: {exc})") from None
    if len(raw) != size or not complete:
        raise AnomaliaError(
            f"the compressed payload does not decode to the {size} bytes its header declares "
            "(corrupted file)"
        )
    return raw


def compress(
    detector: Any,
    X: ArrayLike,
    *,
    ids: Sequence[Any] | None = None,
    id_name: str = "id",
    codec: str = "zlib",
) -> bytes:
    """Encode ``X`` with a fitted auto-encoder and return the compressed file's bytes.

    Parameters
    ----------
    detector : fitted auto-encoder
        ``ae``, ``vae`` (the posterior means are stored), ``vqvae`` (the code indices), or
        any fitted estimator with ``transform`` and ``inverse_transform``.
    X : array-like of shape (n_rows, n_features), (n, H, W) or (n, C, H, W)
        Data the model accepts; :func:`decompress` returns this shape.
    ids : sequence, optional
        One JSON-able id per row (numbers or strings), kept in the header.
    id_name : str, default="id"
        Name of the id column.
    codec : {"none", "zlib", "lzma"}, default="zlib"
        General-purpose compression of the payload. The 8-bit levels of a trained model are
        not uniform: on 2,000 MNIST images zlib made the files 2-8 % smaller than "none"
        and lzma did not beat it (benchmarks/rate_distortion.py); on a handful of rows it
        may add a few bytes.

    Returns
    -------
    bytes
        The container (see the module docstring); its size is the rate.

    Raises
    ------
    AnomaliaError
        For a model without a decoder, data the model rejects, an unknown codec or ids
        that do not match the rows.
    """
    _check_decoder(detector)
    if codec not in CODECS:
        raise AnomaliaError(f"codec must be one of {', '.join(CODECS)}; got {codec!r}")
    row_shape = [int(s) for s in (X if hasattr(X, "shape") else np.asarray(X)).shape[1:]]
    if _is_vq(detector):
        idx = detector.codes(X)
        n_codes = int(detector.module_.quantizer.n_codes)
        dtype = np.uint8 if n_codes <= 256 else np.uint16
        quant: dict[str, Any] = {"kind": "index", "dtype": np.dtype(dtype).name, "n_codes": n_codes}
        raw = idx.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    else:
        q, low, step = quantize(detector.transform(X))
        quant = {"kind": "uniform", "bits": 8}
        raw = low.astype("<f4").tobytes() + step.astype("<f4").tobytes() + q.tobytes()
        idx = q
    payload = _pack(raw, codec)
    header: dict[str, Any] = {
        "format": "anomalia-codes",
        "detector": type(detector).__name__,
        "name": getattr(detector, "name", None),
        "fingerprint": fingerprint(detector),
        "n_rows": len(idx),
        "row_shape": row_shape,
        "code_width": int(idx.shape[1]),
        "quantization": quant,
        "codec": codec,
        "payload_bytes": len(payload),
    }
    if ids is not None:
        id_list = np.asarray(ids).tolist()
        if len(id_list) != len(idx):
            raise AnomaliaError(f"got {len(id_list)} ids for {len(idx)} rows")
        header.update(ids=id_list, id_name=str(id_name))
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return MAGIC + _PREFIX.pack(FORMAT_VERSION, len(head)) + head + payload


def write_compressed(
    path: str | os.PathLike[str], detector: Any, X: ArrayLike, **kwargs: Any
) -> Path:
    """Write :func:`compress` output to ``path`` atomically (no partial file on error).

    ``kwargs`` are those of :func:`compress`. Returns the path written.
    """
    blob = compress(detector, X, **kwargs)
    out = atomic_output(path, lambda tmp: tmp.write_bytes(blob))
    return out


def _int(header: dict[str, Any], key: str, low: int, high: int) -> int:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AnomaliaError(
            f"the compressed file's header field {key} must be an integer in [{low}, {high}]; "
            f"got {value!r:.40} (corrupted or edited file)"
        )
    return value


def _check_header(header: Any) -> dict[str, Any]:
    """Every field of the header: types, ranges and known keys (see the module docstring)."""
    if not isinstance(header, dict):
        raise AnomaliaError("the compressed file's header is not a JSON object (corrupted)")
    missing = [k for k in _FIELDS if k not in header]
    if missing:
        raise AnomaliaError(f"the compressed file's header lacks {', '.join(missing)}")
    unknown = set(header) - {*_FIELDS, "format", "name", "ids", "id_name"}
    if unknown or header.get("format", "anomalia-codes") != "anomalia-codes":
        raise AnomaliaError(f"the compressed file's header has unknown fields {sorted(unknown)}")
    for key in ("detector", "fingerprint"):
        if not isinstance(header[key], str):
            raise AnomaliaError(f"the compressed file's header field {key} must be a string")
    n = _int(header, "n_rows", 1, 2**40)  # compress refuses 0 rows
    _int(header, "code_width", 1, 2**24)
    _int(header, "payload_bytes", 0, 2**62)
    shape = header["row_shape"]
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise AnomaliaError("the compressed file's header field row_shape must list 1-3 sizes")
    if header["codec"] not in CODECS:
        raise AnomaliaError(f"unknown codec {header['codec']!r:.40} in the compressed file")
    quant = header["quantization"]
    if not isinstance(quant, dict) or quant.get("kind") not in _KINDS:
        raise AnomaliaError(f"unknown quantization {quant!r:.60} in the compressed file")
    if quant["kind"] == "index":
        if quant.get("dtype") not in ("uint8", "uint16") or set(quant) - {
            "kind",
            "dtype",
            "n_codes",
        }:
            raise AnomaliaError(f"unknown index quantization {quant!r:.60} in the compressed file")
        _int(quant, "n_codes", 1, 2**16)
    elif quant != {"kind": "uniform", "bits": 8}:
        raise AnomaliaError(f"unknown uniform quantization {quant!r:.60} in the compressed file")
    if "ids" in header:
        ids = header["ids"]
        if not isinstance(ids, list) or len(ids) != n or not isinstance(header.get("id_name"), str):
            raise AnomaliaError("the compressed file's ids do not match its rows (corrupted)")
        if not all(isinstance(i, str | int | float) and not isinstance(i, bool) for i in ids):
            raise AnomaliaError("the compressed file's ids must be numbers or strings")
    return header


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise AnomaliaError("not an anomalia compressed-codes file (wrong magic bytes)")
    if len(data) < _HEAD:
        raise AnomaliaError("the compressed file is truncated (no header)")
    version, size = _PREFIX.unpack_from(data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise AnomaliaError(
            f"compressed-codes format version {version} is unknown; this anomalia reads "
            f"version {FORMAT_VERSION}"
        )
    if len(data) < _HEAD + size:
        raise AnomaliaError("the compressed file is truncated (header cut short)")
    try:
        header = json.loads(data[_HEAD : _HEAD + size], parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AnomaliaError("the compressed file's header is not valid JSON (corrupted)") from None
    header = _check_header(header)
    payload = data[_HEAD + size :]
    if len(payload) != header["payload_bytes"]:
        what = "truncated" if len(payload) < header["payload_bytes"] else "has trailing bytes"
        raise AnomaliaError(
            f"the compressed file is {what}: payload of {len(payload)} bytes, "
            f"header says {header['payload_bytes']}"
        )
    return header, payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_header(data: bytes) -> dict[str, Any]:
    """Return the JSON header of a compressed file's bytes, after checking the container.

    Raises
    ------
    AnomaliaError
        On a wrong magic, an unknown format version, or a truncated or corrupted file.
    """
    return _split(data)[0]


def decompress(detector: Any, data: bytes, *, max_bytes: int = MAX_BYTES) -> NDArray[np.float64]:
    """Decode the bytes written by :func:`compress` with the same model.

    Parameters
    ----------
    detector : fitted auto-encoder
        The model that compressed the data (or a saved-and-loaded copy of it).
    data : bytes
        The container.
    max_bytes : int, default=4 GiB
        Ceiling, in bytes, on the decompressed codes and on the decoded float64 rows;
        checked against the header before anything is decompressed.

    Returns
    -------
    ndarray of float64, shape (n_rows, *row_shape)
        Approximate rows or images, in the original units and in the shape ``X`` had.

    Raises
    ------
    AnomaliaError
        On a wrong magic, an unknown format version, a truncated or corrupted file, or a
        model other than the one that compressed the data.
    """
    _check_decoder(detector)
    header, payload = _split(data)
    if header["detector"] != type(detector).__name__:
        raise AnomaliaError(
            f"these codes were made by a model of class {header['detector']}, not "
            f"{type(detector).__name__}: decompress with the model that compressed them"
        )
    if header["fingerprint"] != fingerprint(detector):
        raise AnomaliaError(
            f"these codes were made by another model (fingerprint {header['fingerprint']}, "
            f"this model's is {fingerprint(detector)}): decompress with the model that "
            "compressed them"
        )
    n, width, quant = int(header["n_rows"]), int(header["code_width"]), header["quantization"]
    if math.prod(header["row_shape"]) != getattr(detector, "n_features_in_", None):
        raise AnomaliaError(
            f"these codes decode to rows of shape {tuple(header['row_shape'])}, but the model "
            f"makes {getattr(detector, 'n_features_in_', '?')} values per row"
        )
    if quant["kind"] == "index":
        dtype = np.dtype(quant["dtype"]).newbyteorder("<")
        expected = n * width * dtype.itemsize
    else:
        dtype = np.dtype(np.uint8)
        expected = 8 * width + n * width
    decoded = n * math.prod(header["row_shape"]) * 8
    if max(expected, decoded) > max_bytes:
        raise AnomaliaError(
            f"the compressed file would decode to {max(expected, decoded)} bytes, above the "
            f"ceiling of {max_bytes} (pass max_bytes to decompress more at once)"
        )
    raw = _unpack(payload, header["codec"], expected)
    if quant.get("kind") == "index":
        out = detector.decode_codes(np.frombuffer(raw, dtype=dtype).reshape(n, width))
    else:
        low = np.frombuffer(raw, dtype="<f4", count=width)
        step = np.frombuffer(raw, dtype="<f4", count=width, offset=4 * width)
        q = np.frombuffer(raw, dtype=np.uint8, offset=8 * width).reshape(n, width)
        # |low + q * step| <= |low| + 255 |step|, in float64 (no overflow): within float32
        bound = np.abs(low.astype(np.float64)) + LEVELS * np.abs(step.astype(np.float64))
        if not np.all(bound <= np.finfo(np.float32).max):  # NaN fails too
            raise AnomaliaError(
                "the compressed file's code offsets and steps give NaN, infinite or too large "
                "codes (corrupted file)"
            )
        out = detector.inverse_transform(dequantize(q, low, step))
    out = np.asarray(out, dtype=np.float64)
    if not np.isfinite(out).all():
        raise AnomaliaError(
            "the compressed file's codes decode to infinite or NaN values (corrupted file)"
        )
    return out.reshape(n, *header["row_shape"])


def mse_psnr(X: ArrayLike, X_hat: ArrayLike, *, peak: float | None = None) -> tuple[float, float]:
    """Mean squared error and peak signal-to-noise ratio of a reconstruction.

    Parameters
    ----------
    X, X_hat : array-like of the same shape
        Original and reconstruction, in the same units.
    peak : float, optional
        Signal range in those units (1 for pixels in [0, 1], 255 for 8-bit pixels);
        default: ``max(X) - min(X)``.

    Returns
    -------
    mse : float
        Mean over every value of the squared error.
    psnr : float
        ``10 * log10(peak**2 / mse)`` in dB (infinite when ``mse`` is 0).

    Examples
    --------
    >>> [round(v, 6) for v in mse_psnr([0.0, 1.0], [0.1, 0.9])]
    [0.01, 20.0]
    """
    a = np.asarray(X, dtype=np.float64)
    b = np.asarray(X_hat, dtype=np.float64)
    if a.shape != b.shape:
        raise AnomaliaError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    rng = float(a.max() - a.min()) if peak is None else float(peak)
    psnr = math.inf if mse == 0 else 10 * math.log10(rng**2 / mse)
    return mse, psnr
