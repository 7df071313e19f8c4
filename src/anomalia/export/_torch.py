"""The PyTorch detectors as ONNX subgraphs: the network and its input scaling in one module,
exported by ``torch.onnx.export``'s dynamo (``torch.export``-based) exporter.

That exporter is torch 2.13's default; it translates through onnxscript and needs no network
access. The legacy TorchScript exporter (``dynamo=False``) is deprecated and is not used.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import torch

from ..errors import AnomaliaError
from ._graph import OPSET, Graph


class _Scorer(torch.nn.Module):
    """Flat float32 rows -> anomaly scores, as the detector computes them.

    The rows are reshaped to the model's images (if any), scaled by the detector's
    ``input_shift_`` and ``input_scale_`` (in float32, as the detector does) and scored by
    the network: the mean squared reconstruction error of the scaled input for ``ae``,
    ``dae``, ``conv-ae`` and ``disentangle``; the negative ELBO at the posterior mean for
    ``vae``; the quantised reconstruction error (plus the weighted code surprise with
    ``score_method="recon+rarity"``) for ``vqvae``.
    """

    def __init__(self, det: Any, kind: str) -> None:
        super().__init__()
        self.module = det.module_
        self.kind = kind
        self.shape = None if det.image_shape_ is None else tuple(int(s) for s in det.image_shape_)
        self.register_buffer("shift", torch.from_numpy(det.input_shift_.astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(det.input_scale_.astype(np.float32)))
        self.rarity_weight = 0.0
        if kind == "vqvae" and det.score_method == "recon+rarity":
            self.rarity_weight = float(det.rarity_weight)
            log_prob = torch.from_numpy(det.code_log_prob_.astype(np.float32))
            self.register_buffer("surprise", -log_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shape is not None:
            x = x.reshape(-1, *self.shape)
        z = (x - self.shift) / self.scale
        if self.kind == "vae":
            return self.module.score(z, method="elbo")
        score = self.module.score(z)
        if self.rarity_weight:
            codes = self.module.codes(z)
            surprise = self.surprise[codes].reshape(codes.shape[0], -1).mean(dim=1)
            score = score + self.rarity_weight * surprise
        return score


def torch_kind(det: Any) -> str:
    """Which scoring :class:`_Scorer` uses for ``det``, or an :class:`AnomaliaError` saying
    why it cannot be exported."""
    from ..detectors.autoencoder import AEDetector, VAEDetector, VQVAEDetector
    from ..detectors.disentangle import DisentangleDetector

    if isinstance(det, VAEDetector):
        if det.score_method != "elbo":
            raise AnomaliaError(
                f"cannot export a vae with score_method={det.score_method!r}: its Monte-Carlo "
                "score draws random numbers, which an ONNX graph would not repeat; fit it with "
                "score_method='elbo' to export it"
            )
        return "vae"
    if isinstance(det, VQVAEDetector):
        return "vqvae"
    if isinstance(det, AEDetector) and det.code_neighbors:
        raise AnomaliaError(
            f"cannot export an ae with code_neighbors={det.code_neighbors}: its score also "
            "searches the training codes, which the exported graph does not hold; fit it with "
            "code_neighbors=0 to export it"
        )
    if isinstance(det, AEDetector | DisentangleDetector):
        return "ae"
    raise AnomaliaError(f"cannot export {type(det).__name__}: not a supported network")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence what the dynamo exporter says that is no concern of the exported model.

    It logs a warning per torchvision operator it cannot register (torchvision is not a
    dependency), and torch's pytree helpers raise a FutureWarning about their own API.
    Both are filtered narrowly, by logger and by message, for the export call only.
    """
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                category=FutureWarning,
            )
            yield
    finally:
        logger.setLevel(level)


def export_scorer(det: Any) -> onnx.ModelProto:
    """The network with its scaling as an ONNX model: input ``x`` (batch, n_features) float32,
    output ``score`` (batch,) float32."""
    kind = torch_kind(det)
    scorer = _Scorer(det, kind).eval()
    example = torch.zeros(2, int(det.n_features_in_), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            scorer,
            (example,),
            dynamo=True,
            input_names=["x"],
            output_names=["score"],
            dynamic_shapes={"x": {0: batch}},
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    if program is None:  # pragma: no cover - only the legacy exporter returns None
        raise AnomaliaError("torch.onnx.export returned no program")
    return program.model_proto


def torch_score(g: Graph, det: Any, x: str) -> str:
    """The network's score of the raw rows ``x``, appended to ``g``."""
    sub = export_scorer(det)
    x32 = x if g.dtype == np.float32 else g.cast(x, onnx.TensorProto.FLOAT, "net_x32")
    (score,) = g.absorb(sub, {"x": x32}, "net")
    if g.dtype != np.float32:
        score = g.cast(score, g.elem, "net_score_cast")
    return score
