"""Joint training of a classifier and a generator of boundary outliers (Lee et al. 2018).

:func:`train_boundary_gan` alternates, on every minibatch of real rows:

1. the discriminator: binary cross-entropy of real rows vs generated ones;
2. the generator: the (non-saturating) GAN loss plus the classifier's outlier-exposure term
   on its samples, ``beta`` times their cross-entropy to the uniform distribution, i.e.
   ``beta * KL(uniform || classifier(G(z)))`` up to the constant ``log K``; the GAN term keeps
   the samples near the data, the KL term pushes them where the classifier is unsure;
3. the classifier: its own loss (:meth:`~anomalia.models.classifier.ClassifierNet.loss`) on
   the real rows and the generated ones labelled ``-1``: cross-entropy on the real rows plus
   ``beta`` times the same KL term, the loss of outlier exposure.

``beta`` is the classifier's ``oe_weight``. This is the paper's joint objective (their
equation 3); :class:`~anomalia.detectors.confidence.ConfidenceDetector` uses the trained
generator as a source of outliers (``outliers="generate"``). It is a separate loop from
:func:`anomalia.training.train`, which steps one optimiser on one loss.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import Tensor, nn

from .errors import TrainingError
from .models.classifier import ClassifierNet
from .models.outlier_gan import BoundaryGAN
from .training import TrainConfig, make_optimizer

__all__ = ["GAN_BETAS", "train_boundary_gan"]

logger = logging.getLogger(__name__)

GAN_BETAS: tuple[float, float] = (0.5, 0.999)
"""Adam's moment coefficients for the generator and discriminator (Radford et al. 2016)."""


def train_boundary_gan(
    net: ClassifierNet, gan: BoundaryGAN, X: Tensor, y: Tensor, config: TrainConfig
) -> dict[str, list[float]]:
    """Train ``net`` and ``gan`` jointly on labelled rows; return the history.

    Parameters
    ----------
    net : ClassifierNet
        The classifier; its ``oe_weight`` is ``beta``. Trained in place (AdamW).
    gan : BoundaryGAN
        Generator and discriminator producing inputs shaped like ``X[0]``. Trained in
        place (Adam with :data:`GAN_BETAS`); left in eval mode.
    X : Tensor of shape (n, ...)
        Real training inputs (already scaled), float32, n >= 2.
    y : Tensor of shape (n,)
        Class index of each row, in ``[0, net.n_classes)``.
    config : TrainConfig
        ``epochs`` (passes over ``X``), ``batch_size``, ``lr`` (all three optimisers),
        ``weight_decay`` (the classifier's), ``grad_clip`` and ``seed`` (shuffling, noise,
        dropout) are used; there is no validation or early stopping.

    Returns
    -------
    dict of str to list of float
        Per epoch, the mean over minibatches of ``"d_loss"`` (discriminator), ``"g_loss"``
        (generator, GAN + KL terms), ``"c_loss"`` (classifier) and ``"fake_msp"`` (the
        classifier's mean maximum softmax probability on the generated inputs: 1/K is
        as unsure as it can be), and ``"epoch_seconds"``.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` do not match or there are fewer than 2 rows.
    TrainingError
        If a loss becomes NaN or infinite.
    """
    if X.ndim < 2 or len(X) < 2 or y.shape != (len(X),):
        raise ValueError(f"X needs at least 2 rows and y one label per row; got {tuple(X.shape)}")
    opt_c = make_optimizer(net, config)  # the AdamW of anomalia.training.train
    opt_g, opt_d = (
        torch.optim.Adam(
            m.parameters(), lr=config.lr, betas=GAN_BETAS, fused=X.device.type in ("cpu", "cuda")
        )
        for m in (gan.generator, gan.discriminator)
    )
    rng = torch.Generator(device=X.device).manual_seed(config.seed)
    history: dict[str, list[float]] = {
        k: [] for k in ("d_loss", "g_loss", "c_loss", "fake_msp", "epoch_seconds")
    }
    y = y.long()
    n, b = len(X), min(config.batch_size, len(X))
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator
        torch.manual_seed(config.seed)
        net.train()
        gan.train()
        for _ in range(config.epochs):
            start = time.perf_counter()
            sums = dict.fromkeys(("d_loss", "g_loss", "c_loss", "fake_msp"), 0.0)
            perm = torch.randperm(n, generator=rng, device=X.device)
            steps = 0
            for i in range(0, n, b):
                idx = perm[i : i + b]
                if len(idx) < 2:  # a final batch of one row is dropped, as in train()
                    continue
                parts = _step(net, gan, X[idx], y[idx], rng, (opt_c, opt_g, opt_d), config)
                for k, v in parts.items():
                    sums[k] += v
                steps += 1
            for k, v in sums.items():
                history[k].append(v / max(steps, 1))
            history["epoch_seconds"].append(time.perf_counter() - start)
            logger.debug("boundary GAN epoch %d: %s", len(history["d_loss"]), sums)
    net.eval()
    gan.eval()
    return history


def _step(
    net: ClassifierNet,
    gan: BoundaryGAN,
    x: Tensor,
    y: Tensor,
    rng: torch.Generator,
    optimizers: tuple[torch.optim.Optimizer, ...],
    config: TrainConfig,
) -> dict[str, float]:
    """One alternating update of the discriminator, the generator and the classifier."""
    opt_c, opt_g, opt_d = optimizers
    outliers = torch.full((len(x),), -1, dtype=torch.long, device=x.device)
    fake = gan.sample(len(x), rng)

    opt_d.zero_grad(set_to_none=True)
    d_loss = gan.discriminator_loss(x, fake)
    _backward(d_loss, gan.discriminator, config, "discriminator")
    opt_d.step()

    opt_g.zero_grad(set_to_none=True)
    g_loss = gan.generator_loss(fake) + net.loss(fake, outliers)  # + beta * KL(U || p)
    _backward(g_loss, gan.generator, config, "generator")
    opt_g.step()

    opt_c.zero_grad(set_to_none=True)  # drops what the generator's step left in the net
    c_loss = net.loss(torch.cat([x, fake.detach()]), torch.cat([y, outliers]))
    _backward(c_loss, net, config, "classifier")
    opt_c.step()
    with torch.no_grad():
        fake_msp = torch.softmax(net(fake.detach()), dim=1).amax(dim=1).mean()
    return {
        "d_loss": d_loss.item(),
        "g_loss": g_loss.item(),
        "c_loss": c_loss.item(),
        "fake_msp": float(fake_msp),
    }


def _backward(loss: Tensor, module: nn.Module, config: TrainConfig, what: str) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(
            f"the {what} loss became {float(loss)} while training the boundary GAN; "
            "try a smaller lr"
        )
    loss.backward()
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
