"""Input handling shared by the PyTorch detectors: tables and images, validated and scaled.

Tables are 2-D (n_samples, n_features). Images are (n, H, W) or (n, C, H, W) arrays, kept as
(n, C, H, W), or the path of a folder of image files (:func:`images_of_folder`). Scaling is
fitted on the training data and saved with the model: per feature for tables
(standardisation), one shift and scale for all pixels of images.
"""

from __future__ import annotations

import copy
import numbers
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, validate_data

from .._utils.scaling import constant_feature_scale, constant_features
from .._utils.validation import input_errors_as_data_errors
from ..base import BaseDetector
from ..errors import DataError, ModelFileError

#: Accepted input dtypes: float32 input stays float32 (no copy to float64 before the network).
FLOATS = (np.float64, np.float32)

#: Most rows per scoring batch: large batches keep the CPU busy with few Python calls.
SCORE_BATCH = 65536

#: Bytes of activations a scoring batch may hold (256 MiB); its rows follow from it.
SCORE_MEMORY = 256 * 2**20

_ROWS_WITHIN: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def rows_within(module: Any, row_shape: tuple[int, ...], budget: int = SCORE_MEMORY) -> int:
    """Rows per inference batch so that one batch's activations take about ``budget`` bytes.

    One row's activation bytes are measured once per network: a one-row
    ``module.per_sample_loss`` (the whole forward pass and its error) with forward hooks
    adding up the bytes of every submodule's outputs, an upper bound on what inference
    holds at once. The result lies between 64 and :data:`SCORE_BATCH` rows: a dense
    auto-encoder on 30 features gets the maximum, a convolutional one on 28 x 28 images a
    few thousand rows.
    """

    cached = _ROWS_WITHIN.get(module)
    if cached is not None:
        return cached
    with _MEASURING:  # one measurement at a time, on a copy: scoring threads share `module`
        cached = _ROWS_WITHIN.get(module)
        if cached is None:
            cached = _ROWS_WITHIN[module] = _measure_rows(copy.deepcopy(module), row_shape, budget)
    return cached


_MEASURING = threading.Lock()


def _measure_rows(module: Any, row_shape: tuple[int, ...], budget: int) -> int:
    """:func:`rows_within` for a network no other thread uses."""
    import torch

    total = 0

    def count(_: Any, __: Any, out: Any) -> None:
        nonlocal total
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    for m in module.modules():
        m.register_forward_hook(count)
    module.eval()
    with torch.inference_mode():
        module.per_sample_loss(torch.zeros(1, *row_shape))
    per_row = max(total, 4 * int(np.prod(row_shape)))
    return int(np.clip(budget // per_row, 64, SCORE_BATCH))


def images_of_folder(X: Any) -> Any:
    """``X`` itself, or, when it is a path (``str`` or ``os.PathLike``), the images of that
    folder as :func:`anomalia.images.read_image_folder` reads them for the CLI: uint8
    (n, H, W) grey or (n, 3, H, W) colour, in sorted file order (sub-folders included)."""
    if not isinstance(X, str | os.PathLike):
        return X
    from ..images import read_image_folder

    return read_image_folder(X).X


def auto_batch_size(n_rows: int) -> int:
    """Default batch: 32 rows (best on small tables), growing so that an epoch of a large
    table stays near 1,000 optimisation steps: clip(n_rows // 1000, 32, 1024)."""
    return int(np.clip(n_rows // 1000, 32, 1024))


def module_from_state(build: Callable[[], Any], state: dict[str, NDArray[Any]]) -> Any:
    """The network ``build()`` makes, filled with the stored tensors ``state``.

    The network is first built on PyTorch's meta device (no memory, no random draws), and
    the stored tensors must match its names, shapes and dtypes exactly before real memory is
    allocated: parameters edited in a model file cannot make a huge network or a partial one.
    Batch-norm variances must be >= 0 (finiteness is the reader's check of every array).
    """
    import torch

    with torch.device("meta"):
        module = build()
    expected = module.state_dict()
    if set(expected) != set(state):
        diff = sorted(set(expected) ^ set(state))[:3]
        raise ModelFileError(f"the stored network weights do not match the network: {diff}")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    for name, t in expected.items():
        if t.dim() == 0 and tensors[name].shape == (1,):  # safetensors keeps scalars as (1,)
            tensors[name] = tensors[name].reshape(())
        if tensors[name].shape != t.shape or tensors[name].dtype != t.dtype:
            raise ModelFileError(
                f"stored weight {name} is {tuple(tensors[name].shape)} {tensors[name].dtype}; "
                f"the network needs {tuple(t.shape)} {t.dtype}"
            )
        if name.endswith("running_var") and not bool((tensors[name] >= 0).all()):
            raise ModelFileError(f"stored batch-norm variance {name} has negative entries")
    module = module.to_empty(device="cpu")
    module.load_state_dict(tensors, strict=True)
    return module.eval()


def seed_from(random_state: Any) -> int:
    """A 31-bit seed from ``random_state``, never touching numpy's global generator."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(random_state, numbers.Integral):
        return int(random_state) % (2**31)
    return int(check_random_state(random_state).randint(2**31 - 1))


class TorchDetector(BaseDetector):
    """Validation and input scaling for detectors built on a PyTorch network (not registered).

    Subclasses may override ``_image_shape_for_table`` (read flat rows as images) and
    ``_check_images_allowed`` (refuse images).
    """

    #: Features constant in training scale by ``constant_feature_scale`` (the auto-encoders:
    #: a value the training rows never showed reconstructs badly, so it scores high); False
    #: keeps scale 1, for a classifier, whose inputs must stay in the range it was trained on.
    _scale_constant_features = True

    def _image_shape_for_table(self, n_features: int) -> tuple[int, ...] | None:
        return None

    def _check_images_allowed(self) -> None:
        """Raise :class:`DataError` if this configuration cannot take images."""

    @input_errors_as_data_errors()  # sklearn's and numpy's ValueErrors are DataErrors
    def _validate(self, X: ArrayLike, *, reset: bool) -> NDArray[np.float64]:
        X = images_of_folder(X)  # a folder of PNG/JPEG files, as in the CLI
        min_rows = 2 if reset else 1
        if not reset and (ready := self._ready_table(X, FLOATS)) is not None:
            return ready if self.image_shape_ is None else ready.reshape(-1, *self.image_shape_)
        if not hasattr(X, "shape"):  # lists and other array-likes
            X = np.asarray(X)
        if hasattr(X, "iloc") or len(X.shape) <= 2:
            X2 = validate_data(self, X, reset=reset, dtype=FLOATS, ensure_min_samples=min_rows)
            if reset:
                self.image_shape_ = self._image_shape_for_table(X2.shape[1])
            return X2 if self.image_shape_ is None else X2.reshape(-1, *self.image_shape_)
        arr = check_array(
            X, allow_nd=True, dtype=FLOATS, ensure_min_samples=min_rows, input_name="X"
        )
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4:
            raise DataError(f"images must be (n, H, W) or (n, C, H, W); got shape {arr.shape}")
        if reset:
            self._check_images_allowed()
            self.image_shape_ = tuple(int(s) for s in arr.shape[1:])
            self.n_features_in_ = int(np.prod(self.image_shape_))
            if hasattr(self, "feature_names_in_"):  # left from an earlier fit on a DataFrame
                del self.feature_names_in_
        elif self.image_shape_ is None:
            raise DataError(
                f"this model was trained on tables of {self.n_features_in_} "
                f"features; got images of shape {arr.shape[1:]}"
            )
        elif tuple(arr.shape[1:]) != tuple(self.image_shape_):
            raise DataError(
                f"images have shape {tuple(arr.shape[1:])} (C, H, W) but the model "
                f"was trained on {tuple(self.image_shape_)}"
            )
        return arr

    def _fit_scaling(self, X: NDArray[np.float64]) -> None:
        if self.image_shape_ is not None:
            # one shift and scale for all pixels (mean and std of the training pixels), so a
            # pixel's variance is about 1 as the VAE's unit-variance decoder assumes
            self._set_scaling(np.array([X.mean()]), np.array([X.std()]))
        else:
            self._set_scaling(X.mean(axis=0), X.std(axis=0))

    def _set_scaling(self, mean: NDArray[np.float64], std: NDArray[np.float64]) -> None:
        """Set ``input_shift_`` and ``input_scale_`` from the training data's mean and
        (population) standard deviation: per feature for tables, one value for images.

        Both fit paths use it: in memory (:meth:`_fit_scaling`) and streamed (statistics
        merged over a file's batches), so the same statistics give the same scaling.
        """
        if self.image_shape_ is not None:
            m, s = float(mean[0]), float(std[0])
            self.input_shift_ = np.array([m if self.standardize else 0.0])
            self.input_scale_ = np.array([s if self.standardize and s > 0 else 1.0])
        elif self.standardize:
            self.input_shift_ = mean
            constant = constant_features(mean, std)
            scale = np.where(constant, 1.0, std)
            if self._scale_constant_features:
                scale = np.where(constant, constant_feature_scale(mean), scale)
            self.input_scale_ = scale
        else:
            self.input_shift_ = np.zeros(len(mean))
            self.input_scale_ = np.ones(len(mean))
