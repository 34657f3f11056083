"""Axes that stay within what is possible: AUC in [0, 1], whole epochs and task counts, and a scale
that one outlier does not set. Every figure of :mod:`emm_lib.study.shared.plots`, :mod:`emm_lib.study.sweep.plots_sweep` and
:mod:`emm_lib.study.replay.plots_protocol` goes through these; ``tests/study/test_present.py`` checks them."""
from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
from matplotlib.ticker import Formatter

__all__ = ["bound_auc", "auc_error", "integer_ticks", "plain_ticks", "SameDecimals", "robust_limits", "count_label", "AXES_KEY", "auc_axes",
           "png_bytes", "install_png_formatter"]

#: The PNG text chunk in which every book figure records its AUC axes (the browser check reads it).
AXES_KEY = "emm:axes"
_NOT_ABSOLUTE = re.compile(r"difference|gain|\u2212|-|\bvs\b", re.I)


def bound_auc(ax, axis: str = "x", pad: float = 0.02) -> tuple[float, float]:
    """Keep an AUC axis inside [0, 1] (plus nothing): the data's range with a small margin, cut at
    0 and 1. Returns the limits set."""
    get, set_ = (ax.get_xlim, ax.set_xlim) if axis == "x" else (ax.get_ylim, ax.set_ylim)
    lo, hi = get()
    inverted = lo > hi
    lo, hi = min(lo, hi), max(lo, hi)
    span = max(hi - lo, 1e-6)
    lo, hi = max(0.0, lo - pad * span), min(1.0, hi + pad * span)
    set_((hi, lo) if inverted else (lo, hi))
    return lo, hi


def auc_error(mean, lo, hi=None) -> np.ndarray:
    """matplotlib's ``xerr``/``yerr`` for AUC means with a CI ``[lo, hi]`` (``hi`` defaults to the
    symmetric end), cut at 0 and 1: an AUC interval never crosses 1. NaN ends give no bar."""
    mean = np.atleast_1d(np.asarray(mean, float))
    lo = np.atleast_1d(np.asarray(lo, float))
    hi = 2 * mean - lo if hi is None else np.atleast_1d(np.asarray(hi, float))
    low = np.clip(lo, 0.0, 1.0)
    high = np.clip(hi, 0.0, 1.0)
    err = np.vstack([mean - low, high - mean])
    return np.where(np.isfinite(err), np.maximum(err, 0.0), 0.0)


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only (epochs, task counts): never 1.25 or 2.5."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


class SameDecimals(Formatter):
    """Tick labels with the fewest decimals (at most 6) that write every tick of the axis exactly,
    the same for all: 0.90 beside 0.96, never 0.9. A real minus sign; zero has no sign."""

    decimals = 6

    def format_ticks(self, values) -> list[str]:
        vals = np.asarray(values, float)
        tol = 1e-6 * max(float(np.ptp(vals)) if len(vals) > 1 else 1.0, 1e-12)
        self.decimals = next((d for d in range(7) if np.allclose(np.round(vals, d), vals, rtol=0, atol=tol)), 6)
        return [self(v) for v in vals]

    def __call__(self, x, pos=None) -> str:
        text = f"{x:.{self.decimals}f}"
        return text.lstrip("-") if float(text) == 0 else text.replace("-", "\u2212")


def plain_ticks(axis, nbins: int = 4) -> None:
    """At most ``nbins`` ticks at round steps (1, 2 or 5 times a power of ten), written by
    :class:`SameDecimals`, with no offset."""
    from matplotlib.ticker import MaxNLocator

    # a vertical axis has room for three ticks; a horizontal one of a narrow panel only for two
    axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 5, 10], min_n_ticks=3 if axis.axis_name == "y" else 2))
    axis.set_major_formatter(SameDecimals())


def _typical(x: np.ndarray, k: float) -> np.ndarray:
    """Which of ``x`` lie within ``k`` robust spreads (median absolute deviation, floored) of the median."""
    med = np.median(x)
    mad = max(np.median(np.abs(x - med)), 1e-3 * max(np.abs(x).max(), 1e-9), 1e-6)
    return np.abs(x - med) <= k * 1.4826 * mad


def robust_limits(values, ends=(), k: float = 6.0, pad: float = 0.08) -> tuple[tuple[float, float], np.ndarray]:
    """Limits that one outlier does not set: they hold 0, every typical value and every typical
    interval end (within ``k`` robust spreads of the median of its kind). Returns ((lo, hi),
    off-scale mask of ``values``): the caller marks off-scale points at the edge with their value;
    an interval that runs past a limit is cut by the axis."""
    v = np.asarray(values, float)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return (-1.0, 1.0), np.zeros(v.shape, bool)
    keep = [fin[_typical(fin, k)], [0.0]]
    e = np.concatenate([np.asarray(x, float).ravel() for x in ends]) if len(ends) else np.array([])
    e = e[np.isfinite(e)]
    if e.size:
        keep.append(e[_typical(e, k)])
    keep = np.concatenate(keep)
    lo, hi = float(keep.min()), float(keep.max())
    span = max(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return (lo, hi), np.isfinite(v) & ((v < lo) | (v > hi))


def count_label(value) -> str:
    """An axis category in words: 100000 -> "100,000" (never "1e+06"), 0.5 -> "0.5", text unchanged."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def auc_axes(fig) -> list[dict]:
    """The figure's absolute-AUC axes (a visible axis whose label names AUC and no difference or
    gain), with their limits: ``[{"axis": "x", "label": "test AUC", "lo": 0.93, "hi": 0.96}]``."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for name, label, lim in (("x", ax.get_xlabel(), ax.get_xlim()), ("y", ax.get_ylabel(), ax.get_ylim())):
            if re.search(r"\bAUC\b", label) and not _NOT_ABSOLUTE.search(label):
                out.append({"axis": name, "label": label, "lo": float(min(lim)), "hi": float(max(lim))})
    return out


def png_bytes(fig, **kwargs) -> bytes:
    """The figure as PNG with its AUC axes recorded in the text chunk :data:`AXES_KEY`."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={AXES_KEY: json.dumps(auc_axes(fig))}, **kwargs)
    return buf.getvalue()


def install_png_formatter() -> bool:
    """In IPython (Jupyter, papermill), show every matplotlib figure through :func:`png_bytes`, so
    the book's inline figures carry their AUC axes too. False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None:
        return False
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    plt.get_backend()
    plt._get_backend_mod()  # load the (lazily chosen) inline backend now: it registers its own PNG formatter
    ip.display_formatter.formatters["image/png"].for_type(
        Figure, lambda fig: base64.b64encode(png_bytes(fig)).decode("ascii"))
    return True
