"""Evaluation plots of anomaly scores, built with matplotlib's object-oriented API only.

Every function returns a :class:`matplotlib.figure.Figure` created directly (never through
``pyplot``), so nothing here touches matplotlib's global state: no backend switch, no
figure registry, no rcParams change. :func:`save_figure` writes a figure as a PNG file
atomically.

Conventions (shared with :mod:`anomalia.metrics` and :mod:`anomalia.thresholds`): labels
``1`` = anomaly, ``0`` = normal; anomaly scores higher = more anomalous; a record is
flagged anomalous iff its score is strictly greater than the threshold.

Colours follow the Okabe-Ito palette, which stays distinguishable under the common forms
of colour-vision deficiency.
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import precision_recall_curve, roc_curve

from .errors import DataError
from .metrics import average_precision, check_labels_and_scores, roc_auc
from .thresholds import check_binary_labels

__all__ = [
    "PALETTE",
    "plot_boundary",
    "plot_codebook",
    "plot_codes",
    "plot_density",
    "plot_image_grid",
    "plot_pr",
    "plot_reconstructions",
    "plot_roc",
    "plot_score_histogram",
    "save_evaluation_plots",
    "save_figure",
]

#: Okabe-Ito colours (blue, vermillion, bluish green, reddish purple, orange, sky blue, black).
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
)
#: After the Okabe-Ito colours, for more series: Paul Tol's wine, olive and teal.
_MORE_COLORS: tuple[str, ...] = ("#882255", "#999933", "#44AA99")
#: Line styles cycled with the colours: (colour, style) differs for up to 20 curves.
_LINE_STYLES: tuple[Any, ...] = ("-", "--", "-.", ":")
_NORMAL_COLOR = "#0072B2"
_ANOMALY_COLOR = "#D55E00"
_CHANCE_COLOR = "0.45"
_DPI = 120

ScoresArg = ArrayLike | Mapping[str, ArrayLike]
ThresholdsArg = float | Mapping[str, float] | None


def _check_threshold(value: Any, name: str = "threshold") -> float | None:
    if value is None:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(t):
        raise DataError(f"{name} must be finite, got {value!r}")
    return t


def _series(
    scores: ScoresArg, thresholds: ThresholdsArg
) -> list[tuple[str | None, Any, float | None]]:
    """Normalise one array or a name -> scores mapping to ``[(name, scores, threshold)]``."""
    if not isinstance(scores, Mapping):
        if isinstance(thresholds, Mapping):
            raise DataError(
                "thresholds is a mapping but scores is a single array; "
                "pass scores as a mapping name -> scores too"
            )
        return [(None, scores, _check_threshold(thresholds))]
    if not scores:
        raise DataError("the scores mapping is empty")
    names = [str(k) for k in scores]
    if len(set(names)) != len(names):
        raise DataError(f"score names must be distinct, got {names}")
    if isinstance(thresholds, Mapping):
        by_name = {str(k): v for k, v in thresholds.items()}
        unknown = sorted(set(by_name) - set(names))
        if unknown:
            raise DataError(f"thresholds given for unknown score names {unknown}; known: {names}")
        return [
            (n, s, _check_threshold(by_name.get(n), f"threshold of {n!r}"))
            for n, s in zip(names, scores.values(), strict=True)
        ]
    t = _check_threshold(thresholds)
    return [(n, s, t) for n, s in zip(names, scores.values(), strict=True)]


def _scores_name(name: str | None) -> str:
    return "scores" if name is None else f"scores of {name!r}"


def _new_axes(figsize: tuple[float, float]) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize, dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3, linewidth=0.6)
    return fig, ax


def _counts_at(y: NDArray[np.int64], s: NDArray[np.float64], t: float) -> tuple[int, int, int, int]:
    """``(tp, fp, n_anomalies, n_normal)`` when flagging ``s > t``."""
    flag = s > t
    pos = y == 1
    return int((flag & pos).sum()), int((flag & ~pos).sum()), int(pos.sum()), int((~pos).sum())


def _point_label(t: float, x_name: str, x: float, y_name: str, yv: float) -> str:
    return f"score > {t:.4g}: {x_name} {x:.2f}, {y_name} {yv:.2f}"


def _wrap(name: str, width: int = 40) -> str:
    """A curve's name in the legend, wrapped to lines of ``width`` characters."""
    import textwrap

    return "\n".join(textwrap.wrap(name, width)) or name


def _curve_style(i: int) -> tuple[str, Any]:
    """Colour and line style of the ``i``-th curve: 10 colours, then 4 line styles cycled."""
    colors = PALETTE + _MORE_COLORS
    return colors[i % len(colors)], _LINE_STYLES[i % len(_LINE_STYLES)]


def _curve_entry(color: str, style: Any, point: bool) -> Any:
    """Legend handle of one curve: its line, with the operating-point dot when marked."""
    from matplotlib.lines import Line2D

    return Line2D(
        [], [], color=color, linestyle=style, lw=2, marker="o" if point else None, ms=8,
        mec="black", mew=1.0,
    )  # fmt: skip


def _curve_figure(labels: list[str]) -> tuple[Figure, Any]:
    """Figure of a ROC or PR plot: a square axes, and for several curves a legend column to
    the right, wide and tall enough for ``labels`` (one per curve, lines split by newlines)."""
    if len(labels) == 1:
        return _new_axes((5.6, 5.6))
    lines = [line for label in labels for line in label.split("\n")]
    width = 0.7 + 0.058 * max(len(line) for line in lines)  # the handle, then 8-pt characters
    height = 1.1 + 0.17 * (len(lines) + 1) + 0.1 * (len(labels) + 1)  # and the chance line
    return _new_axes((5.4 + width, max(5.2, height)))


def _curve_legend(
    fig: Figure, ax: Any, handles: list[Any], labels: list[str], inside: str | None
) -> None:
    """One entry per curve: to the right of the axes for several curves; for one curve inside
    the axes at ``inside`` (a corner the curve leaves free), or below them when None."""
    if len(handles) <= 2 and inside is not None:  # one curve and the chance line
        ax.legend(handles, labels, loc=inside, fontsize="small", framealpha=0.9)
    elif len(handles) <= 2:
        fig.legend(handles, labels, loc="outside lower center", fontsize="small", frameon=False)
    else:
        fig.legend(
            handles, labels, loc="outside right upper", fontsize="small", frameon=False,
            handlelength=3.0, labelspacing=0.9,
        )  # fmt: skip


def plot_roc(
    y_true: ArrayLike,
    scores: ScoresArg,
    thresholds: ThresholdsArg = None,
    *,
    title: str | None = None,
) -> Figure:
    """Plot the ROC curve(s) of anomaly scores, with AUC in the legend and operating points marked.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. Both must be present.
    scores : array-like of shape (n_samples,) or mapping of str to array-like
        Anomaly scores (higher = more anomalous), or several named score vectors (e.g. one
        per detector), each drawn as its own curve.
    thresholds : float or mapping of str to float, optional
        Decision threshold(s), in the unit of the scores: the operating point
        "anomaly iff score > threshold" is marked with a dot on the curve. A single float
        applies to every curve; a mapping gives one per name (names may be left out).
    title : str, optional
        Axes title; default "ROC curve".

    Returns
    -------
    matplotlib.figure.Figure
        x: false-alarm rate (FPR), y: recall (TPR), both fractions in [0, 1]; the dashed
        diagonal is a random ranking.
    """
    series = _series(scores, thresholds)
    y = check_binary_labels(y_true, name="y_true")
    curves = []
    for name, raw, t in series:
        y, s = check_labels_and_scores(y, raw, name=_scores_name(name))
        auc = roc_auc(y, s)
        label = f"AUC = {auc:.3f}" if name is None else f"{_wrap(name)} (AUC = {auc:.3f})"
        point = None
        if t is not None:
            tp, fp, n_pos, n_neg = _counts_at(y, s, t)
            point = (fp / n_neg, tp / n_pos)
            label += "\n" + _point_label(t, "FPR", point[0], "TPR", point[1])
        curves.append((roc_curve(y, s)[:2], point, label))
    fig, ax = _curve_figure([label for _, _, label in curves])
    handles, labels = [], []
    for i, ((fpr, tpr), point, label) in enumerate(curves):
        color, style = _curve_style(i)
        ax.plot(fpr, tpr, color=color, linestyle=style, lw=2)
        if point is not None:
            ax.plot(*point, "o", ms=9, color=color, mec="black", mew=1.2, zorder=4)
        handles.append(_curve_entry(color, style, point is not None))
        labels.append(label)
    (chance,) = ax.plot([0, 1], [0, 1], linestyle="--", color=_CHANCE_COLOR, lw=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_box_aspect(1)
    ax.set_xlabel("false-alarm rate (FPR)")
    ax.set_ylabel("recall (TPR)")
    ax.set_title(title if title is not None else "ROC curve")
    _curve_legend(fig, ax, [*handles, chance], [*labels, "chance (AUC 0.5)"], "lower right")
    return fig


def plot_pr(
    y_true: ArrayLike,
    scores: ScoresArg,
    thresholds: ThresholdsArg = None,
    *,
    title: str | None = None,
) -> Figure:
    """Plot the precision-recall curve(s) of anomaly scores, with average precision (AP).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. Both must be present.
    scores : array-like of shape (n_samples,) or mapping of str to array-like
        Anomaly scores (higher = more anomalous), or several named score vectors.
    thresholds : float or mapping of str to float, optional
        Decision threshold(s), in the unit of the scores; the operating point
        "anomaly iff score > threshold" is marked with a dot. When a threshold flags no
        record its precision is drawn as 1, the end point of scikit-learn's curve.
    title : str, optional
        Axes title; default "Precision-recall curve".

    Returns
    -------
    matplotlib.figure.Figure
        x: recall (TPR), y: precision (PPV), both fractions in [0, 1]; the dashed
        horizontal line is the anomaly prevalence, the precision of a random ranking.
    """
    series = _series(scores, thresholds)
    y = check_binary_labels(y_true, name="y_true")
    curves = []
    for name, raw, t in series:
        y, s = check_labels_and_scores(y, raw, name=_scores_name(name))
        if y.all():
            raise DataError("a precision-recall curve needs normal rows (0) in y_true too")
        ap = average_precision(y, s)
        label = f"AP = {ap:.3f}" if name is None else f"{_wrap(name)} (AP = {ap:.3f})"
        point = None
        if t is not None:
            tp, fp, n_pos, _ = _counts_at(y, s, t)
            point = (tp / n_pos, tp / (tp + fp) if tp + fp else 1.0)
            label += "\n" + _point_label(t, "recall", point[0], "precision", point[1])
        precision, recall, _ = precision_recall_curve(y, s)
        curves.append(((recall, precision), point, label))
    fig, ax = _curve_figure([label for _, _, label in curves])
    handles, labels = [], []
    for i, ((recall, precision), point, label) in enumerate(curves):
        color, style = _curve_style(i)
        ax.plot(recall, precision, color=color, linestyle=style, lw=2, drawstyle="steps-post")
        if point is not None:
            ax.plot(*point, "o", ms=9, color=color, mec="black", mew=1.2, zorder=4)
        handles.append(_curve_entry(color, style, point is not None))
        labels.append(label)
    prevalence = float(y.mean())
    chance = ax.axhline(prevalence, linestyle="--", color=_CHANCE_COLOR, lw=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_box_aspect(1)
    ax.set_xlabel("recall (TPR)")
    ax.set_ylabel("precision (PPV)")
    ax.set_title(title if title is not None else "Precision-recall curve")
    chance_label = f"chance (prevalence {prevalence:.3f})"
    # a PR curve can run anywhere inside the axes: no legend inside them
    _curve_legend(fig, ax, [*handles, chance], [*labels, chance_label], None)
    return fig


def plot_score_histogram(
    y_true: ArrayLike,
    scores: ArrayLike,
    threshold: float | None = None,
    *,
    title: str | None = None,
    log_scale: bool | None = None,
) -> Figure:
    """Plot overlaid histograms of the anomaly scores of normal and anomalous records.

    Both classes share the same bins and are normalised to densities, so classes of very
    different sizes remain comparable.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. A class that is absent
        is simply not drawn.
    scores : array-like of shape (n_samples,)
        Anomaly scores (higher = more anomalous), in the detector's own unit.
    threshold : float, optional
        Decision threshold in the unit of the scores, drawn as a dashed vertical line;
        records to its right (score > threshold) are flagged anomalous.
    title : str, optional
        Axes title; default "Anomaly-score distribution".
    log_scale : bool, optional
        Logarithmic score axis (bins equally wide in log10(score)). By default (None) it is
        chosen when every score (and the threshold) is positive and the scores span more
        than 3 decades, or more than 1 decade with a long right tail (see below). True
        requires positive scores and threshold.

    Returns
    -------
    matplotlib.figure.Figure
        x: anomaly score; y: density, per unit of score (linear axis) or per decade of
        score (log axis), so each class's histogram has area 1. When a tail of the scores
        runs past Tukey's far-out fences (3 interquartile ranges beyond the quartiles, in
        the axis's unit) the axis stops at the fence, so a few extreme scores do not squeeze
        the rest into one bin; the legend counts the scores left out, and the areas are the
        shares drawn. The threshold always stays on the axis.
    """
    y, s = check_labels_and_scores(y_true, scores)
    t = _check_threshold(threshold)
    positive = bool(s.min() > 0) and (t is None or t > 0)
    if log_scale is None:
        span = float(s.max() / s.min()) if positive else 0.0
        log = span > 1e3 or (span > 10 and _fences(s)[1] < s.max())
    elif log_scale and not positive:
        raise DataError("log_scale=True needs positive scores and a positive threshold")
    else:
        log = bool(log_scale)
    x = np.log10(s) if log else s
    xt = None if t is None else (math.log10(t) if log else t)
    lo, hi = _fences(x)
    lo, hi = max(lo, float(x.min())), min(hi, float(x.max()))
    if xt is not None:
        lo, hi = min(lo, xt), max(hi, xt)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    n_bins = int(np.clip(np.ceil(2.0 * s.size ** (1.0 / 3.0)), 10, 60))  # Rice rule, capped
    edges = np.linspace(lo, hi, n_bins + 1)
    plot_edges = 10.0**edges if log else edges

    fig, ax = _new_axes((6.4, 4.2))
    left_out = []
    for cls, color, what in ((0, _NORMAL_COLOR, "normal"), (1, _ANOMALY_COLOR, "anomaly")):
        xs = x[y == cls]
        if xs.size == 0:
            continue
        counts, _ = np.histogram(xs, bins=edges)  # scores off the axis are not counted
        ax.stairs(
            counts / (xs.size * np.diff(edges)),
            plot_edges,
            fill=True,
            facecolor=to_rgba(color, 0.35),
            edgecolor=color,
            linewidth=1.6,
            label=f"{what} (n = {xs.size})",
        )
        off = int(((xs < lo) | (xs > hi)).sum())
        if off:
            left_out.append(f"{off} {'anomalies' if what == 'anomaly' and off > 1 else what}")
    if t is not None:
        ax.axvline(t, color="black", linestyle="--", lw=1.5, label=f"threshold = {t:.4g}")
    if left_out:
        cuts = [f"< {plot_edges[0]:.4g}"] * bool(x.min() < lo) + [f"> {plot_edges[-1]:.4g}"] * bool(
            x.max() > hi
        )
        ax.plot([], [], " ", label=f"off the axis ({' or '.join(cuts)}): {', '.join(left_out)}")
    ax.set_xlim(plot_edges[0], plot_edges[-1])
    if log:
        _log_axis(ax, hi - lo)
    ax.set_xlabel("anomaly score (log scale)" if log else "anomaly score")
    ax.set_ylabel("density (per decade of score)" if log else "density (per unit of score)")
    ax.set_title(title if title is not None else "Anomaly-score distribution")
    ax.set_ylim(0.0, ax.get_ylim()[1] * 1.3)  # headroom so the legend hides no bar
    ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
    return fig


def _fences(x: NDArray[np.float64]) -> tuple[float, float]:
    """Tukey's far-out fences: 3 interquartile ranges below and above the quartiles (the
    whole real line when the quartiles coincide)."""
    q1, q3 = np.quantile(x, [0.25, 0.75])
    iqr = float(q3 - q1)
    if iqr <= 0:
        return -math.inf, math.inf
    return float(q1) - 3.0 * iqr, float(q3) + 3.0 * iqr


def _log_axis(ax: Any, decades: float) -> None:
    """A log x axis; up to 3 decades wide, ticks at 1, 2, 5 x 10^k written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    if decades <= 3:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def _as_images(arr: Any, row: int) -> NDArray[np.float64]:
    """Return ``(n, H, W)`` or ``(n, H, W, 3)`` float images scaled for display."""
    try:
        a = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"row {row} of images is not numeric") from None
    if a.ndim == 4 and a.shape[1] in (1, 3):
        a = a[:, 0] if a.shape[1] == 1 else np.moveaxis(a, 1, -1)
    elif a.ndim != 3:
        raise DataError(
            f"row {row} of images must have shape (n, H, W) or (n, C, H, W) with C in "
            f"{{1, 3}}, got {a.shape}"
        )
    if a.shape[0] == 0 or a.size == 0:
        raise DataError(f"row {row} of images is empty (shape {a.shape})")
    if not np.isfinite(a).all():
        raise DataError(f"row {row} of images contains NaN or infinite values")
    if a.ndim == 4:  # RGB: imshow needs [0, 1]; rescale the row only when it is outside
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a


def plot_image_grid(
    rows: Sequence[ArrayLike],
    row_titles: Sequence[str],
    *,
    col_titles: Sequence[str] | None = None,
    cmap: str | Sequence[str] = "gray",
    title: str | None = None,
    colorbar: str | Sequence[str | None] | None = None,
) -> Figure:
    """Draw a grid of images, one row per kind (e.g. originals, reconstructions, error maps).

    Parameters
    ----------
    rows : sequence of array-like
        One array per row, of shape (n, H, W) or (n, C, H, W) with C = 1 (grey) or 3 (RGB),
        pixel values in any unit. Rows may hold different numbers of images; short rows
        leave blank cells. Grey images of a row share one colour scale (the row's min to
        max), so images within a row compare directly. RGB rows outside [0, 1] are
        min-max rescaled to [0, 1].
    row_titles : sequence of str
        One title per row, written to the left of the row.
    col_titles : sequence of str, optional
        One title per column (as many as the longest row), written above the first row.
    cmap : str or sequence of str, default="gray"
        Matplotlib colormap for grey images, or one per row (e.g. ``"magma"`` for error
        maps). Ignored for RGB rows.
    title : str, optional
        Title above the whole grid; default none.
    colorbar : str or sequence of (str or None), optional
        Label of a colour bar drawn at the right end of each grey row (e.g. "squared
        error"), one label for every row or one per row (None: no bar for that row).

    Returns
    -------
    matplotlib.figure.Figure
        The grid, about 1.7 inches per image, on a white background.
    """
    if len(rows) == 0:
        raise DataError("plot_image_grid needs at least one row of images")
    if isinstance(row_titles, str) or len(row_titles) != len(rows):
        raise DataError(f"give one row title per row: {len(rows)} rows")
    images = [_as_images(r, i) for i, r in enumerate(rows)]
    n_rows, n_cols = len(images), max(len(a) for a in images)
    if col_titles is not None and (isinstance(col_titles, str) or len(col_titles) != n_cols):
        raise DataError(f"give one column title per column: {n_cols} columns")
    cmaps = _per_row(cmap, n_rows, "cmap", "one colormap name")
    bars = _per_row(colorbar, n_rows, "colorbar", "one label")

    cell = 1.7
    height = cell * n_rows + 0.3 * (col_titles is not None) + 0.4 * (title is not None)
    fig = Figure(
        figsize=(cell * n_cols + 0.5 + 0.8 * any(bars), height), dpi=_DPI, layout="constrained"
    )
    if title is not None:
        fig.suptitle(title)
    _draw_images(
        fig,
        images,
        row_titles,
        [None if col_titles is None else list(col_titles)] + [None] * (n_rows - 1),
        cmaps,
        [_grey_range(a) for a in images],
        bars,
    )
    return fig


def _per_row(value: Any, n_rows: int, name: str, one: str) -> list[Any]:
    values = [value] * n_rows if value is None or isinstance(value, str) else list(value)
    if len(values) != n_rows:
        raise DataError(f"{name} must be {one} or one per row ({n_rows} rows)")
    return values


def _grey_range(*arrays: NDArray[np.float64]) -> tuple[float, float]:
    """One colour scale, the min to max of ``arrays`` (a unit wide when they are flat)."""
    vmin = min(float(a.min()) for a in arrays)
    vmax = max(float(a.max()) for a in arrays)
    return vmin, vmax if vmax > vmin else vmin + 1.0


def _draw_images(
    fig: Any,
    images: Sequence[NDArray[np.float64]],
    row_titles: Sequence[str],
    cell_titles: Sequence[Sequence[str] | None],
    cmaps: Sequence[str],
    ranges: Sequence[tuple[float, float]],
    colorbars: Sequence[str | None],
    title_size: str = "medium",
) -> None:
    """Draw rows of images (from :func:`_as_images`) into a figure or subfigure: the row
    title left of each row, ``cell_titles[r]`` above the images of row r, and a colour bar
    right of each grey row with a label in ``colorbars``."""
    n_cols = max(len(a) for a in images)
    bars = any(colorbars)
    widths = [1.0] * n_cols + [0.07] * bars
    axes = fig.subplots(
        len(images), n_cols + bars, squeeze=False, gridspec_kw={"width_ratios": widths}
    )
    for r, a in enumerate(images):
        art = None
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(a):
                if a.ndim == 4:
                    art = ax.imshow(a[c], interpolation="nearest")
                else:
                    vmin, vmax = ranges[r]
                    art = ax.imshow(
                        a[c], cmap=cmaps[r], vmin=vmin, vmax=vmax, interpolation="nearest"
                    )
            else:
                for spine in ax.spines.values():
                    spine.set_visible(False)
            if c == 0:
                ax.set_ylabel(str(row_titles[r]))
            titles = cell_titles[r]
            if titles is not None and c < len(titles):
                ax.set_title(str(titles[c]), fontsize=title_size)
        if bars and colorbars[r] and a.ndim == 3:
            fig.colorbar(art, cax=axes[r, -1], label=colorbars[r])
        elif bars:
            axes[r, -1].set_axis_off()


def plot_reconstructions(
    originals: ArrayLike,
    reconstructions: ArrayLike,
    errors: ArrayLike,
    scores: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    threshold: float | None = None,
    n: int = 8,
    title: str | None = None,
    error_name: str = "squared error",
) -> Figure:
    """Draw the most and the least anomalous images with their reconstructions and error maps.

    Parameters
    ----------
    originals : array-like of shape (N, H, W) or (N, C, H, W)
        Images (C = 1 grey or 3 RGB), pixel values in any unit, e.g. the rows of a test set
        (or only the ones worth drawing: the ``n`` highest and ``n`` lowest scores).
    reconstructions : array-like of the same shape
        The model's reconstruction of each image, in the unit of ``originals``. Grey
        originals and reconstructions share one colour scale, so they compare directly.
    errors : array-like of shape (N, H, W) or (N, C, H, W)
        Reconstruction error of each pixel (e.g. squared error, in squared pixel units),
        averaged over channels; all error maps share one colour scale, shown by a colour bar.
    scores : array-like of shape (N,)
        Anomaly score of each image (higher = more anomalous), written above it.
    labels : array-like of shape (N,), optional
        True labels, 1 (or True) = anomaly, 0 (or False) = normal, written under the score.
    threshold : float, optional
        Decision threshold in the unit of the scores (anomaly iff score > threshold),
        quoted in the title.
    n : int, default=8
        Images per group: the ``n`` most anomalous, then the ``n`` least anomalous (fewer
        when there are fewer than ``2 n`` images), 8 images a row.
    title : str, optional
        First line of the title; default "Reconstructions".
    error_name : str, default="squared error"
        What ``errors`` measure: the title of the error rows and of the colour bar.

    Returns
    -------
    matplotlib.figure.Figure
        Two groups, each with rows of originals, reconstructions and error maps.
    """
    from .thresholds import check_binary_labels

    originals_, recon = _as_images(originals, 0), _as_images(reconstructions, 1)
    err = np.asarray(errors, dtype=np.float64)
    err = _as_images(err.mean(axis=1) if err.ndim == 4 else err, 2)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = None if labels is None else check_binary_labels(labels, name="labels")
    sizes = {len(originals_), len(recon), len(err), len(s), *([len(y)] if y is not None else [])}
    if (
        len(sizes) != 1
        or recon.shape != originals_.shape
        or err.shape[1:3] != originals_.shape[1:3]
    ):
        raise DataError(
            "originals, reconstructions, errors, scores (and labels) must describe the same "
            f"images: got {originals_.shape}, {recon.shape}, {err.shape}, {s.shape}"
        )
    if not np.isfinite(s).all():
        raise DataError("scores contain NaN or infinite values")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise DataError(f"n must be a positive integer, got {n!r}")
    t = _check_threshold(threshold)

    order = np.argsort(-s, kind="stable")
    n_top = min(n, math.ceil(len(s) / 2))
    groups = [
        (f"the {n_top} most anomalous (highest scores)", order[:n_top]),
        (f"the {min(n, len(s) - n_top)} least anomalous (lowest scores)",
         order[::-1][: min(n, len(s) - n_top)]),
    ]  # fmt: skip
    groups = [(name, pick) for name, pick in groups if len(pick)]
    per_row = 8
    grey = _grey_range(originals_, recon) if originals_.ndim == 3 else (0.0, 1.0)
    err_range = _grey_range(err)
    cell = 1.3
    n_chunks = [math.ceil(len(pick) / per_row) for _, pick in groups]
    cols = min(per_row, max(len(pick) for _, pick in groups))
    fig = Figure(
        figsize=(cell * cols + 1.6, sum(3 * cell * k + 0.75 for k in n_chunks) + 0.7),
        dpi=_DPI,
        layout="constrained",
    )
    notes = ["number above each image: its anomaly score"]
    if t is not None:
        notes.append(f"flagged when > {t:.4g}")
    if y is not None:
        notes.append("below it the true label")
    fig.suptitle(f"{title if title is not None else 'Reconstructions'}\n{'; '.join(notes)}")
    subfigs = fig.subfigures(len(groups), 1, height_ratios=n_chunks, squeeze=False)[:, 0]
    for sub, (name, pick) in zip(subfigs, groups, strict=True):
        sub.suptitle(name, fontsize="medium", fontweight="bold")
        rows, row_titles, cell_titles = [], [], []
        for i in range(0, len(pick), per_row):
            part = pick[i : i + per_row]
            rows += [originals_[part], recon[part], err[part]]
            row_titles += ["original", "reconstruction", error_name]
            names = [
                f"{s[j]:.3g}" + ("" if y is None else ("\nanomaly" if y[j] else "\nnormal"))
                for j in part
            ]
            cell_titles += [names, None, None]
        k = len(rows) // 3
        _draw_images(
            sub,
            rows,
            row_titles,
            cell_titles,
            ["gray", "gray", "magma"] * k,
            [grey, grey, err_range] * k,
            [None, None, error_name] * k,
            title_size="small",
        )
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG (120 dpi), atomically.

    The image goes to a temporary file in the target folder, which then replaces ``path``
    in one step: readers never see a half-written file. Missing parent folders are created.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save.
    path : str or path-like
        Destination file; must end in ``.png``.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise DataError(f"figures are saved as PNG: the path must end in .png, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        # os.open with mode 0o666 lets the user's umask decide the final permissions
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=_DPI)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scores"


def save_evaluation_plots(
    y_true: ArrayLike,
    scores: ScoresArg,
    threshold: ThresholdsArg,
    out_dir: str | os.PathLike[str],
    *,
    prefix: str = "",
    title: str | None = None,
) -> list[Path]:
    """Write the ROC, precision-recall and score-histogram plots of an evaluation as PNGs.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels, 1 (or True) = anomaly, 0 (or False) = normal. Both must be present.
    scores : array-like of shape (n_samples,) or mapping of str to array-like
        Anomaly scores (higher = more anomalous), or several named score vectors.
    threshold : float or mapping of str to float or None
        Decision threshold(s) in the unit of the scores (anomaly iff score > threshold),
        marked on every plot; a mapping gives one per name.
    out_dir : str or path-like
        Folder to write into; created if missing.
    prefix : str, default=""
        Prepended to every file name, e.g. ``"iforest-"``.
    title : str, optional
        Common title, followed by the plot's name (e.g. "<title>: ROC curve").

    Returns
    -------
    list of pathlib.Path
        ``{prefix}roc.png``, ``{prefix}pr.png`` and ``{prefix}scores.png``; with a mapping,
        one histogram per name instead, ``{prefix}scores-{name}.png`` (characters other than
        letters, digits, ``.``, ``_`` and ``-`` in the name become ``_``).
    """

    def titled(what: str) -> str:
        return what if title is None else f"{title}: {what}"

    out = Path(out_dir)
    # Build every figure first, so bad input raises before any file is written.
    figures = [
        (f"{prefix}roc.png", plot_roc(y_true, scores, threshold, title=titled("ROC curve"))),
        (
            f"{prefix}pr.png",
            plot_pr(y_true, scores, threshold, title=titled("Precision-recall curve")),
        ),
    ]
    series = _series(scores, threshold)
    if isinstance(scores, Mapping):
        files = [f"{prefix}scores-{_slug(name or '')}.png" for name, _, _ in series]
        if len(set(files)) != len(files):
            raise DataError(f"score names give clashing file names: {files}")
        for file, (name, raw, t) in zip(files, series, strict=True):
            fig = plot_score_histogram(y_true, raw, t, title=titled(f"Anomaly scores of {name}"))
            figures.append((file, fig))
    else:
        t = series[0][2]
        fig = plot_score_histogram(y_true, scores, t, title=titled("Anomaly-score distribution"))
        figures.append((f"{prefix}scores.png", fig))
    return [save_figure(fig, out / file) for file, fig in figures]


def _class_colors(n: int) -> list[Any]:
    """``n`` distinguishable colours: Okabe-Ito up to 7 classes, then tab10 / tab20."""
    from matplotlib import colormaps

    if n <= len(PALETTE):
        return list(PALETTE[:n])
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_codes(
    codes: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    title: str | None = None,
    label_name: str = "class",
    max_legend: int = 20,
) -> Figure:
    """Scatter the bottleneck codes of an auto-encoder in 2-D, coloured by class.

    Parameters
    ----------
    codes : array-like of shape (n_samples, k)
        Codes, e.g. from :func:`anomalia.represent.embed`. With ``k = 2`` they are drawn as
        they are; wider codes are projected on their first two principal components (the
        axis labels say so, with the share of variance each explains); a 1-D code is drawn
        against a small random vertical jitter.
    labels : array-like of shape (n_samples,), optional
        Class of each row (any values: digits, names); each class gets a colour and a
        legend entry (up to ``max_legend`` classes). None draws every point in one colour.
    title : str, optional
        Axes title; default "Auto-encoder codes".
    label_name : str, default="class"
        What the labels are, used as the legend title.
    max_legend : int, default=20
        Most classes listed in the legend (colours repeat beyond 20 classes).

    Returns
    -------
    matplotlib.figure.Figure
        One point per row, in code units (or principal-component units).
    """
    try:
        z = np.asarray(codes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("codes must be numeric") from None
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise DataError(f"codes must have shape (n_samples, k) with n, k >= 1, got {z.shape}")
    if not np.isfinite(z).all():
        raise DataError("codes contain NaN or infinite values")
    k = z.shape[1]
    if k == 1:
        xy = np.c_[z[:, 0], np.random.default_rng(0).uniform(-0.5, 0.5, len(z))]
        axis = ["code 0", "random jitter (1-D codes)"]
    elif k == 2:
        xy, axis = z, ["code 0", "code 1"]
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, svd_solver="full").fit(z)
        xy = pca.transform(z)
        share = pca.explained_variance_ratio_
        axis = [f"PC {i + 1} of the {k}-D codes ({share[i]:.0%} of variance)" for i in range(2)]
    fig, ax = _new_axes((6.4, 5.4))
    size = float(np.clip(3000 / len(z), 3, 30))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, color=_NORMAL_COLOR, alpha=0.6, linewidths=0)
    else:
        lab = np.asarray(labels)
        if lab.shape != (len(z),):
            raise DataError(f"labels must have shape ({len(z)},) like the codes, got {lab.shape}")
        classes, index = np.unique(
            lab.astype(str) if lab.dtype == object else lab, return_inverse=True
        )
        colors = _class_colors(len(classes))
        order = np.random.default_rng(0).permutation(len(z))  # no class hides the others
        ax.scatter(
            xy[order, 0],
            xy[order, 1],
            s=size,
            c=[colors[i] for i in index[order]],
            alpha=0.7,
            linewidths=0,
        )
        for i, cls in enumerate(classes[:max_legend]):
            ax.scatter([], [], s=30, color=colors[i], label=str(cls))
        legend_title = label_name
        if len(classes) > max_legend:
            legend_title += f" (first {max_legend} of {len(classes)})"
        ax.legend(
            title=legend_title,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize="small",
            frameon=False,
            markerscale=1.2,
        )
    ax.set_xlabel(axis[0])
    ax.set_ylabel(axis[1])
    ax.set_title(title if title is not None else "Auto-encoder codes")
    return fig


def plot_codebook(
    counts: ArrayLike,
    *,
    images: ArrayLike | None = None,
    code_maps: ArrayLike | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a VQ-VAE's codebook usage, and optionally which code each image patch uses.

    Parameters
    ----------
    counts : array-like of shape (n_codes,)
        How many code vectors use each code (e.g. :func:`anomalia.represent.code_usage`).
    images : array-like of shape (n, H, W) or (n, C, H, W), optional
        A few images (C = 1 or 3, any pixel unit), drawn next to their code maps.
    code_maps : array-like of shape (n, h, w), optional
        Integer code index of each patch of ``images`` (e.g.
        :func:`anomalia.represent.code_maps`); give both or neither. Each map is drawn
        over the image's extent, coloured by code index (one colour scale for all maps, so
        a colour means the same code everywhere), with the index written in each cell when
        the map has at most 10 x 10 cells.
    title : str, optional
        Title of the usage histogram; default "Codebook usage (perplexity P of N codes)".

    Returns
    -------
    matplotlib.figure.Figure
        Top: bars of the share of code vectors per code index (in %). Below, with
        ``images``: pairs of image and code map.
    """
    from .represent import perplexity

    c = np.asarray(counts, dtype=np.float64)
    ppl = perplexity(c)
    if (images is None) != (code_maps is None):
        raise DataError("give images and code_maps together, or neither")
    n_pairs = 0
    if images is not None:
        imgs = _as_images(images, 0)
        maps = np.asarray(code_maps)
        if maps.ndim != 3 or len(maps) != len(imgs):
            raise DataError(
                f"code_maps must have shape (n, h, w) with n = {len(imgs)} like the images, "
                f"got {maps.shape}"
            )
        if not np.issubdtype(maps.dtype, np.integer) or maps.min() < 0 or maps.max() >= c.size:
            raise DataError(f"code_maps must hold integer code indices in [0, {c.size})")
        n_pairs = len(imgs)
    rows = math.ceil(n_pairs / 4)  # at most 4 pairs a row, rows filled evenly
    cols = math.ceil(n_pairs / rows) if rows else 0
    fig = Figure(figsize=(max(7.0, 3.3 * cols), 3.2 + 1.9 * rows), dpi=_DPI, layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.2, 1.9 * rows]) if rows else (fig, None)
    ax = top.add_subplot()
    ax.grid(True, axis="y", alpha=0.3, linewidth=0.6)
    ax.bar(np.arange(c.size), 100 * c / c.sum(), width=0.85, color=_NORMAL_COLOR)
    ax.set_xlim(-0.6, c.size - 0.4)
    ax.set_xlabel("code index")
    ax.set_ylabel("share of code vectors (%)")
    used = int((c > 0).sum())
    ax.set_title(
        title
        if title is not None
        else f"Codebook usage (perplexity {ppl:.1f} of {c.size} codes, {used} used)"
    )
    if bottom is None:
        return fig
    from matplotlib import colormaps

    cmap = colormaps["turbo"]
    axes = bottom.subplots(rows, 2 * cols, squeeze=False)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    art = None
    for i in range(n_pairs):
        ax_img, ax_map = axes[i // cols, 2 * (i % cols)], axes[i // cols, 2 * (i % cols) + 1]
        height, width = imgs[i].shape[:2]
        extent = (-0.5, width - 0.5, height - 0.5, -0.5)
        ax_img.imshow(imgs[i], cmap="gray", interpolation="nearest")
        art = ax_map.imshow(
            maps[i], cmap=cmap, vmin=0, vmax=c.size - 1, extent=extent, interpolation="nearest"
        )
        h, w = maps[i].shape
        if h <= 10 and w <= 10:
            ys, xs = np.mgrid[0:h, 0:w]
            cx = (xs.ravel() + 0.5) * width / w - 0.5
            cy = (ys.ravel() + 0.5) * height / h - 0.5
            for x, y, code in zip(cx, cy, maps[i].ravel(), strict=True):
                r, g, b, _ = cmap(code / max(c.size - 1, 1))
                ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax_map.text(x, y, str(code), ha="center", va="center", fontsize=6, color=ink)
        ax_img.set_title(f"image {i + 1}", fontsize="small")
        ax_map.set_title(f"its codes ({h}x{w} map)", fontsize="small")
    for j in range(n_pairs, rows * cols):
        for a in axes[j // cols, 2 * (j % cols) : 2 * (j % cols) + 2]:
            a.set_axis_off()
    if art is not None:
        bottom.colorbar(art, ax=axes.ravel().tolist(), label="code index", shrink=0.8)
    return fig


# -- maps of a fitted detector over two of its features -------------------------------------
_MAP_SIZE = (6.6, 6.4)
_LISTED_FEATURES = 8


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED_FEATURES])
    more = len(names) - _LISTED_FEATURES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _model_features(detector: Any, features: Sequence[Any] | None) -> tuple[list[str], int, int]:
    """The model's feature names (``feature j`` when it has none) and the two chosen indices."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector)
    if getattr(detector, "image_shape_", None) is not None:
        raise DataError(
            f"{type(detector).__name__} was fitted on images; a map over two features needs "
            "a model fitted on a table"
        )
    d = int(detector.n_features_in_)
    given = getattr(detector, "feature_names_in_", None)
    names = [str(n) for n in given] if given is not None else [f"feature {j}" for j in range(d)]
    if d < 2:
        raise DataError(f"a map over two features needs a model of 2 or more; this one has {d}")
    if features is None:
        return names, 0, 1
    if isinstance(features, str) or len(features) != 2:
        raise DataError(f"features must name two features of the model, got {features!r}")
    picked = [_feature_index(f, names, given is not None) for f in features]
    if picked[0] == picked[1]:
        raise DataError(f"features must be two different features, got {names[picked[0]]!r} twice")
    return names, picked[0], picked[1]


def _feature_index(key: Any, names: list[str], named: bool, what: str = "") -> int:
    """Index of a feature given by name (models fitted with column names) or 0-based index."""
    d = len(names)
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        if not 0 <= key < d:
            raise DataError(f"{what}feature index {key} is out of range: the model has {d}")
        return int(key)
    if named and str(key) in names:
        return names.index(str(key))
    raise DataError(f"{what}unknown feature {key!r}; the model's features are {_listing(names)}")


def _others(d: int) -> str:
    """The features of a ``d``-feature model off the map's two axes, in words."""
    return "the other feature" if d == 3 else f"the other {d - 2} features"


def _scored_rows(detector: Any, X: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The rows of ``X`` as a float array in the model's column order, and their scores."""
    scores = detector.anomaly_score(X)  # validates X against the model: columns, NaN, ...
    return np.asarray(X, dtype=np.float64), scores


def _grid_rows(
    detector: Any,
    base: NDArray[np.float64],
    i: int,
    j: int,
    xs: NDArray[np.float64],
    ys: NDArray[np.float64],
) -> Any:
    """Every (x, y) of the grid as a row of the model: ``base`` with features i, j replaced.

    Row ``r * len(xs) + c`` is the point ``(xs[c], ys[r])``, so scores reshape to
    ``(len(ys), len(xs))`` as matplotlib's ``pcolormesh`` and ``contour`` take them."""
    gx, gy = np.meshgrid(xs, ys)
    rows = np.repeat(base[None, :], gx.size, axis=0)
    rows[:, i] = gx.ravel()
    rows[:, j] = gy.ravel()
    names = getattr(detector, "feature_names_in_", None)
    if names is None:
        return rows
    import pandas as pd

    return pd.DataFrame(rows, columns=list(names), copy=False)


def _span(values: NDArray[np.float64], pad: float = 0.06) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    width = hi - lo if hi > lo else max(abs(lo), 1.0)
    return lo - pad * width, hi + pad * width


def _check_resolution(resolution: Any) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer):
        raise DataError(f"resolution must be an integer, got {resolution!r}")
    if not 10 <= resolution <= 1000:
        raise DataError(f"resolution must be between 10 and 1000 points a side, got {resolution}")
    return int(resolution)


def _map_axes(ax: Any) -> tuple[Figure, Any, Any, bool]:
    """``(root figure, figure or subfigure holding ax, ax, whether the figure is new)``; a
    new figure when ax is None."""
    if ax is None:
        fig, ax = _new_axes(_MAP_SIZE)
        ax.grid(False)
        return fig, fig, ax, True
    return ax.get_figure(root=True), ax.get_figure(root=False), ax, False


def _draw_rows(ax: Any, xy: NDArray[np.float64], flagged: NDArray[np.bool_], d: int) -> None:
    """Rows as white dots with a black rim (seen on light and dark colours), flagged rows as
    vermillion crosses on top; ``d``: the model's number of features."""
    size = float(np.clip(3000 / len(xy), 5, 22))
    on_all = "" if d == 2 else f" on all {d} features"
    ax.scatter(
        xy[~flagged, 0],
        xy[~flagged, 1],
        s=size,
        c="white",
        edgecolors="black",
        linewidths=0.6,
        zorder=3,
        label="row, not flagged",
    )
    ax.scatter(
        xy[flagged, 0],
        xy[flagged, 1],
        s=max(4.0 * size, 55.0),
        marker="X",
        c=_ANOMALY_COLOR,
        edgecolors="black",
        linewidths=0.6,
        zorder=4,
        label=f"flagged: score{on_all} > threshold",
    )


def _threshold_line(
    ax: Any,
    xs: NDArray[np.float64],
    ys: NDArray[np.float64],
    field: NDArray[np.float64],
    t: float,
    label: str,
) -> Any:
    """The contour ``field == t`` (black on a white rim, gid ``"threshold"``), or None when
    no grid point lies on each side; a legend entry either way."""
    from matplotlib import patheffects

    rim = [patheffects.Stroke(linewidth=4.2, foreground="white"), patheffects.Normal()]
    lo, hi = float(field.min()), float(field.max())
    contour = None
    if lo < t < hi:
        contour = ax.contour(
            xs,
            ys,
            field,
            levels=[t],
            colors="black",
            linewidths=2.0,
            linestyles="solid",
            zorder=2.5,
        )  # solid even when t < 0 (matplotlib dashes negative levels)
        contour.set_gid("threshold")
        contour.set_path_effects(rim)
    else:
        side = "above" if t >= hi else "below"
        label += f", {side} every score in view"
    ax.plot([], [], color="black", lw=2.0, path_effects=rim, label=label)
    return contour


def _map_legend(fig: Any, ax: Any, own: bool) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if own:  # below the axes: a map has data everywhere inside them
        ncols = 2 if max(len(text) for text in labels) <= 44 else 1  # two fit the width
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=ncols,
            fontsize="small",
            frameon=False,
        )
    else:
        ax.legend(handles, labels, loc="best", fontsize="x-small", framealpha=0.85)


def plot_density(
    detector: Any,
    X: Any,
    features: Sequence[str | int] | None = None,
    *,
    resolution: int = 200,
    title: str | None = None,
    ax: Any = None,
    legend: bool = True,
) -> Figure:
    """Draw a fitted Gaussian detector over two features: the rows, the fitted mean ``mu*``,
    the density of ``N(mu*, Sigma*)``, the threshold contour and the flagged rows.

    A model of exactly two features is drawn as it is. With more, the density is drawn on
    the plane through ``mu*`` spanned by the two features, the other features held at
    their fitted mean: for a Gaussian this slice has the shape of the conditional density
    of the two given the others at ``mu*`` (the same ellipses), and that conditional
    density is what the colours give. Axes are in the data's units (the detector's
    standardisation is undone).

    Parameters
    ----------
    detector : GaussianDetector
        A fitted :class:`~anomalia.detectors.classical.GaussianDetector` (either
        ``score_method``; a robust fit draws its robust mean and covariance).
    X : array-like of shape (n_samples, n_features)
        Rows to draw, with the model's columns (e.g. its training data); each is flagged
        when its anomaly score on all its features exceeds ``threshold_``.
    features : pair of str or int, optional
        The two features on the x and y axes: column names of the model, or column
        indices (0-based). Default: the first two.
    resolution : int, default=200
        Grid points per axis at which the density and the score are evaluated.
    title : str, optional
        Axes title; by default it says what is drawn (plain fit or slice) and how many
        rows are flagged.
    ax : matplotlib Axes, optional
        Draw into these axes (e.g. one panel of a larger figure) instead of a new figure.
    legend : bool, default=True
        Add a legend: below the axes on a new figure, inside them with ``ax``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (the one holding ``ax`` when given). Colour: density, per unit of the
        x feature times unit of the y feature; dashed ellipses: Mahalanobis distance 1, 2
        and 3 from ``mu*``; black line: the threshold (anomaly score = ``threshold_``,
        in the detector's score units); the flagged region lies outside it.
    """
    # by name, not isinstance: importing the detectors here would close an import cycle
    # (detectors -> ... -> plots)
    if getattr(detector, "name", None) != "gaussian" or not hasattr(detector, "mahalanobis"):
        raise DataError(
            f"a density map needs a gaussian detector, got {type(detector).__name__} "
            "(plot_boundary draws any detector's scores)"
        )
    names, i, j = _model_features(detector, features)
    res = _check_resolution(resolution)
    rows, scores = _scored_rows(detector, X)
    t = _check_threshold(detector.threshold_, "threshold_")
    d = len(names)
    mu = np.asarray(detector.location_, dtype=np.float64)
    pair = [i, j]
    # covariance of (x_i, x_j) given the other features (the Schur complement); for a
    # Gaussian it is also the shape of the joint density on the slice through mu
    precision = np.linalg.inv(np.asarray(detector.covariance_, dtype=np.float64))
    cond = np.linalg.inv(precision[np.ix_(pair, pair)])
    # the threshold as a Mahalanobis distance (None: below every score, all rows flagged)
    if detector.score_method == "distance":  # score = D_M
        d_t = t if t > 0 else None
    else:  # score = -log N = (d log 2 pi + log det Sigma + D_M^2) / 2
        d_t2 = 2.0 * t - d * math.log(2.0 * math.pi) - detector.log_det_
        d_t = math.sqrt(d_t2) if d_t2 > 0 else None

    reach = max(d_t or 0.0, 3.0) * np.sqrt(np.diag(cond))  # the threshold ellipse, or 3 sd
    xs = np.linspace(*_span(np.r_[rows[:, i], mu[i] - reach[0], mu[i] + reach[0]]), res)
    ys = np.linspace(*_span(np.r_[rows[:, j], mu[j] - reach[1], mu[j] + reach[1]]), res)
    grid = _grid_rows(detector, mu, i, j, xs, ys)
    dist2 = detector.mahalanobis(grid).reshape(res, res)
    field = detector.anomaly_score(grid).reshape(res, res)
    norm_const = 2.0 * math.pi * math.sqrt(float(np.linalg.det(cond)))
    density = np.exp(-0.5 * dist2) / norm_const
    flagged = scores > t

    fig, holder, ax, own = _map_axes(ax)
    mesh = ax.pcolormesh(xs, ys, density, cmap="Blues", shading="nearest", rasterized=True)
    a, b = names[i], names[j]
    what = "density" if d == 2 else f"density given {_others(d)} at μ*"
    holder.colorbar(mesh, ax=ax, shrink=0.9, label=f"{what}\n(per unit of {a} × unit of {b})")
    rings = ax.contour(
        xs,
        ys,
        np.sqrt(dist2),
        levels=[1, 2, 3],
        colors="0.3",
        linewidths=0.8,
        linestyles="dashed",
        zorder=2,
    )
    ax.clabel(rings, fmt=lambda v: f"{v:g}", fontsize="x-small")
    ax.plot([], [], color="0.3", lw=0.8, ls="--", label="Mahalanobis distance 1, 2, 3 from μ*")
    if detector.score_method == "distance":
        line = f"threshold: score = Mahalanobis distance {t:.4g}"
    else:
        line = f"threshold: -log density {t:.4g}"
        if d_t is not None:
            line += f" (Mahalanobis {d_t:.2f})"
    _threshold_line(ax, xs, ys, field, t, line)
    _draw_rows(ax, rows[:, [i, j]], flagged, d)
    ax.plot(
        mu[i],
        mu[j],
        marker="P",
        ms=13,
        color=PALETTE[4],
        mec="black",
        mew=1.2,
        ls="none",
        zorder=5,
        label="μ* (fitted mean)",
    )
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    if title is None:
        fit = "by maximum likelihood"
        if detector.support_fraction is not None:
            fit = f"robust (support: {detector.n_support_} of the training rows)"
        count = f"{int(flagged.sum())} of {len(flagged)} rows flagged"
        if d == 2:
            title = f"Gaussian {fit}: N(μ*, Σ*) on {a} and {b}\n{count}"
        else:
            its = "its" if d == 3 else "their"
            title = (
                f"Gaussian {fit} on {a} and {b}\nslice through μ* ({_others(d)} at {its} "
                f"mean): the conditional density\n{count}, scored on all {d} features"
            )
    ax.set_title(title, fontsize="medium")
    if legend:
        _map_legend(holder, ax, own)
    return fig


def plot_boundary(
    detector: Any,
    X: Any,
    features: Sequence[str | int] | None = None,
    *,
    at: Mapping[str | int, float] | None = None,
    resolution: int = 200,
    name: str | None = None,
    title: str | None = None,
    ax: Any = None,
    legend: bool = True,
) -> Figure:
    """Draw any fitted table detector's anomaly score over two features, with its decision
    boundary (score = ``threshold_``), the rows and the flagged rows.

    The score is evaluated on a grid over the two features, in one call to
    ``anomaly_score``. A model of exactly two features is drawn exactly; with more, the
    other features are held fixed (by default at the median of ``X``), so the map is a
    slice of the score through that point.

    Parameters
    ----------
    detector : BaseDetector
        A fitted detector of table rows (any of :func:`anomalia.available_detectors`
        fitted on a table).
    X : array-like of shape (n_samples, n_features)
        Rows to draw, with the model's columns; a row is flagged when its anomaly score on
        all its features exceeds ``threshold_``. The grid spans their range on the two
        features, plus 6 % a side.
    features : pair of str or int, optional
        The two features on the x and y axes: column names of the model, or column
        indices (0-based). Default: the first two.
    at : mapping of str or int to float, optional
        Values, in the data's units, at which to hold other features (by name or index);
        features not given are held at the median of ``X``.
    resolution : int, default=200
        Grid points per axis (``resolution ** 2`` rows are scored).
    name : str, optional
        The detector's name in the title (e.g. ``"default"``); default ``detector.name``.
    title : str, optional
        Axes title; by default it names the detector, says whether the map is exact or a
        slice, and how many rows are flagged.
    ax : matplotlib Axes, optional
        Draw into these axes (e.g. one panel of a larger figure) instead of a new figure.
    legend : bool, default=True
        Add a legend: below the axes on a new figure, inside them with ``ax``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (the one holding ``ax`` when given). Colour: the anomaly score in the
        detector's own unit (capped at the 98th percentile of the map, where that cuts off
        a long tail; a log scale when the score is positive and spans over two decades);
        black line: the decision boundary, anomalies outside it.
    """
    from matplotlib.colors import LogNorm, Normalize

    names, i, j = _model_features(detector, features)
    res = _check_resolution(resolution)
    rows, scores = _scored_rows(detector, X)
    t = _check_threshold(detector.threshold_, "threshold_")
    d = len(names)
    base = np.median(rows, axis=0)
    for key, value in (at or {}).items():
        k = _feature_index(key, names, hasattr(detector, "feature_names_in_"), "at: ")
        if k in (i, j):
            raise DataError(f"at: {names[k]!r} is on an axis of the map; hold only other features")
        base[k] = _check_threshold(value, f"at[{key!r}]")
    xs = np.linspace(*_span(rows[:, i]), res)
    ys = np.linspace(*_span(rows[:, j]), res)
    field = detector.anomaly_score(_grid_rows(detector, base, i, j, xs, ys)).reshape(res, res)
    flagged = scores > t

    lo, hi = float(field.min()), float(np.quantile(field, 0.98))
    hi = max(hi, t)
    if hi <= lo:
        hi = lo + 1.0
    log = lo > 0 and hi / lo > 100
    norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
    fig, holder, ax, own = _map_axes(ax)
    mesh = ax.pcolormesh(
        xs, ys, field, cmap="viridis", norm=norm, shading="nearest", rasterized=True
    )
    label = "anomaly score" + (" (log scale)" if log else "")
    if float(field.max()) > hi:
        label += "\n(capped at the map's 98th percentile)"
    cbar = holder.colorbar(
        mesh, ax=ax, shrink=0.9, extend="max" if field.max() > hi else "neither", label=label
    )
    if log:  # plain numbers ("0.5", not "5 x 10^-1") at 1, 2, 5 x 10^k; 10^k alone if wide
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        subs = (1.0, 2.0, 5.0) if hi / lo < 1e3 else (1.0,)
        cbar.ax.yaxis.set_major_locator(LogLocator(subs=subs))
        cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        cbar.ax.yaxis.set_minor_formatter(NullFormatter())
    if lo <= t <= hi:
        cbar.ax.axhline(t, color="white", lw=3.5)
        cbar.ax.axhline(t, color="black", lw=1.8)
    _threshold_line(ax, xs, ys, field, t, f"decision boundary: score = threshold {t:.4g}")
    _draw_rows(ax, rows[:, [i, j]], flagged, d)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    a, b = names[i], names[j]
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    if title is None:
        who = name if name is not None else str(getattr(detector, "name", type(detector).__name__))
        count = f"{int(flagged.sum())} of {len(flagged)} rows flagged"
        if d == 2:
            how = "exact: the model has these 2 features"
        else:
            where = "the median of the rows" if not at else "the rows' median or as given"
            how = f"slice: {_others(d)} at {where}"
        title = f"{who}: anomaly score over {a} and {b}\n{how}; {count}"
    ax.set_title(title, fontsize="medium")
    if legend:
        _map_legend(holder, ax, own)
    return fig
