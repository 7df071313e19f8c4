"""Detector names -> classes, imported lazily so ``import anomalia`` stays light (no torch)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .errors import AnomaliaError

# name -> ("module:Class", one-line description for users, preset parameters)
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "default": (
        "anomalia.detectors.ensemble:EnsembleDetector",
        "the recommended detector for tables: mean distance to the 5 nearest training rows "
        "plus robust Gaussians' Mahalanobis distances, each z-scored; the best on average "
        "over the ADBench benchmark under both protocols (see 'anomalia bench').",
        {
            "detectors": (
                ("knn", {"method": "mean", "max_samples": 4000}),
                ("gaussian", {"support_fraction": 0.5, "score_method": "distance"}),
                (
                    "gaussian",
                    {"support_fraction": 0.5, "score_method": "distance", "scale_from": "all"},
                ),
            ),
            "weights": (1.0, 0.5, 0.5),
        },
    ),
    "gaussian": (
        "anomalia.detectors.classical:GaussianDetector",
        "multivariate Gaussian (max. likelihood); score = negative log-density. Few, "
        "roughly elliptical features; fast and explainable.",
        {},
    ),
    "ocsvm": (
        "anomalia.detectors.classical:OCSVMDetector",
        "one-class SVM with an RBF kernel on standardised features. Small/medium tables with "
        "curved normal regions.",
        {},
    ),
    "iforest": (
        "anomalia.detectors.classical:IForestDetector",
        "isolation forest. Large tables, mixed scales, irrelevant features; a strong first choice.",
        {},
    ),
    "knn": (
        "anomalia.detectors.classical:KNNDetector",
        "distance to the k-th nearest training row (standardised features). Clean training "
        "data of moderate size; among the strongest on tabular benchmarks.",
        {},
    ),
    "lof": (
        "anomalia.detectors.classical:LOFDetector",
        "local outlier factor (scikit-learn's, novelty mode) on standardised features: a "
        "row's k-NN density against its neighbours'. Clusters of different densities.",
        {},
    ),
    "ensemble": (
        "anomalia.detectors.ensemble:EnsembleDetector",
        "average of several detectors' scores, each normalised on its training scores. "
        "Combine detectors that fail differently.",
        {},
    ),
    "ae": (
        "anomalia.detectors.autoencoder:AEDetector",
        "dense auto-encoder (PyTorch); score = reconstruction error. Tables with non-linear "
        "structure, clean or polluted training data; its bottleneck is also a learned "
        "representation. Trained as PyOD's AutoEncoder: one hidden layer of 64, a 32-wide "
        "code, relu, batch norm, dropout 0.2, 10 epochs.",
        {
            "hidden": (64,),
            "bottleneck": 32,
            "activation": "relu",
            "dropout": 0.2,
            "batch_norm": True,
            "epochs": 10,
            "validation_fraction": 0.0,
            "patience": None,
        },
    ),
    "dae": (
        "anomalia.detectors.autoencoder:AEDetector",
        "denoising auto-encoder: inputs corrupted by noise in training, clean target. Noisy "
        "tables; learns more robust features than a plain AE.",
        {"noise": 0.2},
    ),
    "conv-ae": (
        "anomalia.detectors.autoencoder:AEDetector",
        "convolutional auto-encoder for images ((n, H, W) arrays, image folders, or flat "
        "rows with image_shape); score = pixel reconstruction error.",
        {"architecture": "conv"},
    ),
    "vae": (
        "anomalia.detectors.autoencoder:VAEDetector",
        "variational auto-encoder (dense or conv); score = negative ELBO. Also a generator "
        "(sample) and a smooth latent space.",
        {},
    ),
    "vqvae": (
        "anomalia.detectors.autoencoder:VQVAEDetector",
        "VQ-VAE: discrete codebook bottleneck (dense or conv); score = reconstruction error, "
        "optionally plus code rarity. Gives discrete codes per row.",
        {},
    ),
    "disentangle": (
        "anomalia.detectors.disentangle:DisentangleDetector",
        "content/style auto-encoder for images (instance norm + AdaIN, as AdaIN-VC); score = "
        "reconstruction error. Swaps the style of one image onto the content of another.",
        {},
    ),
    "text-ae": (
        "anomalia.detectors.text:TextAEDetector",
        "texts: seq2seq auto-encoder whose code is a short word sequence (Wang & Lee 2018; "
        "with summaries, a critic makes it read like one); score = reconstruction loss. "
        "Fit on a text column (--text-column); 'anomalia summarize' writes the codes.",
        {},
    ),
    "confidence": (
        "anomalia.detectors.confidence:ConfidenceDetector",
        "classifier confidence for open-set recognition: fit(X, y) on labelled normal data; "
        "score = low confidence (msp, entropy, energy or mahalanobis). Needs class labels.",
        {},
    ),
    "tree-ae": (
        "anomalia.detectors.tree:TreeAEDetector",
        "tree auto-encoder of sentences (texts, not tables): induces a binary tree per text "
        "from syntactic distances and regenerates the text from a vector composed over it; "
        "score = reconstruction NLL per token. 'anomalia parse' writes the trees.",
        {},
    ),
    "pyod": (
        "anomalia.detectors.pyod:PyODDetector",
        "any PyOD detector, as -d pyod:NAME (pyod:ECOD, pyod:COPOD, ...), with anomalia's "
        "threshold, calibrate and CLI; needs pip install 'anomalia[bench]'. Model files: "
        "ECOD, COPOD, PCA, MCD, LODA, GMM, INNE, MAD, KPCA.",
        {},
    ),
}


def register(name: str, target: str, description: str, **preset: Any) -> None:
    """Register a detector class under ``name`` (``target`` is ``"module:Class"``).

    ``preset`` parameters are applied by :func:`make_detector` before the user's own.
    """
    _REGISTRY[name] = (target, description, preset)


def available_detectors() -> dict[str, str]:
    """Names of all detectors, each with a one-line description of when to use it."""
    return {name: desc for name, (_, desc, _) in _REGISTRY.items()}


def detector_class(name: str) -> type:
    """The class registered under ``name`` (``pyod:NAME``: the PyOD wrapper's);
    :class:`AnomaliaError` for an unknown name."""
    try:
        target, _, _ = _REGISTRY["pyod" if name.startswith("pyod:") else name]
    except KeyError:
        raise AnomaliaError(
            f"unknown detector {name!r}; available: {', '.join(_REGISTRY)}"
        ) from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def detector_parameters(name: str) -> list[tuple[str, str, str]]:
    """``(parameter, default, meaning)`` for every constructor parameter of a detector.

    Defaults include the name's presets (``dae``'s noise, ``default``'s members); meanings
    come from the numpydoc ``Parameters`` section of the class docstring. For ``pyod:NAME``:
    the PyOD class's parameters, then the wrapper's own.
    """
    rows = _parameter_rows(detector_class(name), _REGISTRY.get(name, ("", "", {}))[2])
    if name.startswith("pyod:"):
        from .detectors.pyod import OWN_PARAMETERS, pyod_class

        theirs = _parameter_rows(pyod_class(name.removeprefix("pyod:")), {})
        rows = [r for r in theirs if r[0] not in OWN_PARAMETERS] + [
            r for r in rows if r[0] in OWN_PARAMETERS
        ]
    return rows


def _parameter_rows(cls: type, preset: dict[str, Any]) -> list[tuple[str, str, str]]:
    meanings = _numpydoc_parameters(cls.__doc__ or "")
    rows = []
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default = preset.get(param.name, param.default)
        shown = "(required)" if default is inspect.Parameter.empty else repr(default)
        rows.append((param.name, shown, meanings.get(param.name, "")))
    return rows


def _numpydoc_parameters(doc: str) -> dict[str, str]:
    """Parameter name -> its description (one line) from a numpydoc ``Parameters`` section."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    try:
        i = next(k for k, line in enumerate(lines) if line.strip() == "Parameters") + 2
    except StopIteration:
        return out
    names: list[str] = []
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            break  # the next section
        if line and not line.startswith(" "):
            names = [n.strip() for n in line.split(" : ")[0].split(",") if n.strip()]
            for n in names:
                out[n] = ""
        elif line.strip():
            for n in names:
                out[n] = f"{out[n]} {line.strip()}".strip()
        i += 1
    return out


def make_detector(name: str, **params: Any) -> Any:
    """Create the detector registered under ``name`` with the given parameters.

    Parameters
    ----------
    name : str
        A name from :func:`available_detectors`, e.g. ``"gaussian"``, ``"iforest"``, or
        ``"pyod:NAME"`` for PyOD's detector ``NAME`` (``"pyod:ECOD"``; PyOD installed).
    **params
        Constructor parameters of that detector; an unknown one raises
        :class:`~anomalia.errors.AnomaliaError` listing the valid ones. For ``pyod:NAME``,
        the PyOD class's parameters, and ``contamination`` and ``random_state``, which are
        anomalia's (see :class:`~anomalia.detectors.pyod.PyODDetector`).

    Examples
    --------
    >>> from anomalia import make_detector
    >>> make_detector("iforest", n_estimators=50, random_state=0)
    IForestDetector(n_estimators=50, random_state=0)
    """
    if name.startswith("pyod:"):
        from .detectors.pyod import pyod_detector

        return pyod_detector(name.removeprefix("pyod:"), params)
    cls = detector_class(name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise AnomaliaError(
            f"unknown parameter(s) {', '.join(unknown)} for detector {name!r}; "
            f"valid: {', '.join(valid)}"
        )
    return cls(**{**_REGISTRY[name][2], **params})
