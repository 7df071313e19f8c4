"""Shared fixtures: small synthetic data and the detectors' tiny, fast settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from anomalia.datasets import data_dir

SHARED = data_dir()

#: Tiny settings so every detector fits in well under a second.
FAST_PARAMS: dict[str, dict] = {
    "gaussian": {},
    "ocsvm": {},
    "iforest": {"n_estimators": 25, "random_state": 0},
    "knn": {"n_neighbors": 5},
    "lof": {"n_neighbors": 10},
    "ensemble": {"detectors": ("knn", "gaussian"), "random_state": 0},
    "default": {
        "detectors": (
            "knn",
            ("iforest", {"n_estimators": 25}),
            ("ae", {"hidden": (8,), "epochs": 3, "batch_size": 16}),
        ),
        "trim": 0.1,
        "random_state": 0,
    },
    **{
        name: {"hidden": (8,), "epochs": 3, "batch_size": 16, "random_state": 0}
        for name in ("ae", "dae", "vae")
    },
    "vqvae": {
        "hidden": (8,),
        "n_codes": 8,
        "code_dim": 2,
        "n_latents": 2,
        "epochs": 3,
        "batch_size": 16,
        "random_state": 0,
    },
    "conv-ae": {"channels": (4, 8), "epochs": 2, "batch_size": 16, "random_state": 0},
    "disentangle": {"channels": (4, 8), "epochs": 2, "batch_size": 16, "random_state": 0},
    "confidence": {
        "hidden": (8,),
        "epochs": 3,
        "batch_size": 16,
        "random_state": 0,
        "score_method": "mahalanobis",
    },
    "text-ae": {
        "code_length": 4,
        "max_length": 12,
        "min_count": 1,
        "embedding_dim": 8,
        "hidden_size": 16,
        "epochs": 4,
        "batch_size": 16,
        "random_state": 0,
    },
    "pyod": {"model": "ECOD"},  # the optional 'bench' extra: tests skip it when absent
    "tree-ae": {"embed_dim": 8, "hidden": 16, "code_dim": 16, "epochs": 2, "random_state": 0},
}

#: Whether PyOD (the optional ``bench`` extra) is installed.
HAS_PYOD = importlib.util.find_spec("pyod") is not None

#: Detectors that need class labels in fit (tested in their own files, not by the
#: unsupervised contract tests of test_common.py).
SUPERVISED = {"confidence"}
#: Detectors that take texts, not tables (tested in their own files, tests/test_tree_ae.py
#: and tests/test_text_ae.py, not by the table contract tests of test_common.py).
TEXT = {"tree-ae", "text-ae"}


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """300 normal rows (one Gaussian blob, 4 features), and a test set with 20 far outliers."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 4))
    test_normal = rng.normal(size=(100, 4))
    outliers = rng.uniform(4, 8, size=(20, 4)) * rng.choice([-1, 1], size=(20, 4))
    X_test = np.vstack([test_normal, outliers])
    y_test = np.r_[np.zeros(100, int), np.ones(20, int)]
    return train, X_test, y_test
