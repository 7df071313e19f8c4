"""Pure torch auto-encoders: dense, variational, vector-quantised, convolutional, disentangling,
and over texts (:mod:`anomalia.models.text`, whose code is a word sequence).

Every model shares one contract, used by :func:`anomalia.training.train` and the detectors:

- ``loss(x, target=None, weight=None, generator=None) -> Tensor`` (scalar);
- ``per_sample_loss(x) -> Tensor`` of shape ``(n,)``, deterministic in eval mode;
- ``score(x) -> Tensor`` of shape ``(n,)``, higher is more anomalous;
- ``feature_errors(x)`` of the shape of ``x``; ``forward(x)`` returns the reconstruction.

:class:`TextAE` reads token ids and rebuilds tokens: its ``forward`` returns the code and
each text's loss, and it has no ``feature_errors``. Return types never depend on train/eval
mode. This package imports neither numpy nor
scikit-learn.
"""

from anomalia.models.autoencoder import AutoEncoder, DenseAE
from anomalia.models.conv import ConvAE, ConvDecoder, ConvEncoder, ConvVAE, ConvVQVAE
from anomalia.models.disentangle import DisentangleAE
from anomalia.models.mlp import ACTIVATIONS, mlp
from anomalia.models.text import TextAE, TokenCritic
from anomalia.models.vae import DenseVAE, VariationalAutoEncoder
from anomalia.models.vq import DenseVQVAE, VectorQuantizer, VQAutoEncoder

__all__ = [
    "ACTIVATIONS",
    "AutoEncoder",
    "ConvAE",
    "ConvDecoder",
    "ConvEncoder",
    "ConvVAE",
    "ConvVQVAE",
    "DenseAE",
    "DenseVAE",
    "DenseVQVAE",
    "DisentangleAE",
    "TextAE",
    "TokenCritic",
    "VQAutoEncoder",
    "VariationalAutoEncoder",
    "VectorQuantizer",
    "mlp",
]
