"""Shared figure style of the demo report (scripts/report.py): how a measurement, a prediction and
a tolerance look, log axes with readable ticks, residual panels, and saving a figure.

Conventions, the same in every figure:
  - measured values are markers (filled or open), drawn on top;
  - predictions are lines in the same colour as the measurement they predict, one line style per
    kind of prediction (solid: the law being checked, dashed: an approximation or a guide);
  - a tolerance is a black dash-dotted horizontal line labelled with its value;
  - where measured and predicted coincide, a residual panel below shows |measured - predicted| on a
    log scale with the tolerance drawn.
"""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

# Colour-blind-safe qualitative palette (Okabe and Ito).
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P"]

plt.rcParams.update({
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
    "svg.fonttype": "none",
})


def color(i):
    return COLORS[i % len(COLORS)]


def marker(i):
    return MARKERS[i % len(MARKERS)]


def thin(n, target=40):
    """Indices of about `target` evenly spaced points of n, first and last included."""
    if n <= target:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, target)).astype(int))


def _plain(value, _position=None):
    """A tick label as a plain number (0.05, 200), or m x 10^k when %g would use an exponent."""
    if value == 0:
        return "0"
    text = f"{value:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"${mantissa}\times10^{{{int(exponent)}}}$" if mantissa != "1" else rf"$10^{{{int(exponent)}}}$"
    return text


def _decade(value, _position=None):
    if value <= 0:
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    return rf"$10^{{{int(round(exponent))}}}$"


def log_axis(ax, which="y", values=None):
    """Puts `which` ("x" or "y") on a log scale with ticks at 1-2-5 x 10^k when the data span at
    most two decades (1-2-3-5-7 x 10^k within one), labelled as plain numbers (0.02, 0.05, 0.1),
    else at whole decades (10^k, fewer past twelve decades)."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    span = 0.0
    if values is not None:
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            span = math.log10(v.max() / v.min())
    if span <= 2.0:
        subs = (1.0, 2.0, 3.0, 5.0, 7.0) if span <= 1.0 else (1.0, 2.0, 5.0)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(_plain))
    else:
        axis.set_major_locator(LogLocator(base=10, numticks=8 if span > 12 else 15))
        axis.set_major_formatter(FuncFormatter(_decade))
    axis.set_minor_formatter(NullFormatter())


def positive(values, floor=None):
    """Values with the non-positive ones (no logarithm) removed as NaN, or raised to `floor`."""
    v = np.asarray(values, dtype=float).copy()
    if floor is not None:
        return np.where(v > floor, v, floor)
    v[~(v > 0)] = np.nan
    return v


def tolerance_line(ax, limit, label=None, log_headroom=True):
    """The tolerance of a check as a black dash-dotted line across the axes; on a log axis
    (log_headroom) the axes reach half a decade above it, so the line never sits on the edge."""
    if limit is None or not np.isfinite(limit):
        return
    ax.axhline(limit, color="black", linestyle="-.", linewidth=1.0,
               label=label or f"tolerance {_plain(limit)}")
    if log_headroom:
        ax.axhline(limit * 3.0, alpha=0.0)  # invisible; widens the data limits only


def style_legend(ax, entries, **kwargs):
    """A legend of (label, dict of Line2D style) pairs: explains colours and styles separately
    from the data lines, so every entry looks exactly like what it names."""
    handles = [Line2D([], [], **style) for _, style in entries]
    return ax.legend(handles, [label for label, _ in entries], **kwargs)


MEASURED = dict(color="0.3", marker="o", linestyle="none", markerfacecolor="none")


def figure(rows=1, cols=1, height_ratios=None, width=7.0, height=None, sharex=False):
    """A figure with a constrained layout (nothing clipped) of rows x cols axes."""
    height = height or (2.6 * rows + 0.6)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, sharex=sharex,
                             gridspec_kw={"height_ratios": height_ratios} if height_ratios else None,
                             layout="constrained")
    return fig, axes


def save(fig, folder, name):
    """Writes <folder>/<name>.png and .svg; returns the PNG's file name."""
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png")
    fig.savefig(folder / f"{name}.svg")
    plt.close(fig)
    return f"{name}.png"
