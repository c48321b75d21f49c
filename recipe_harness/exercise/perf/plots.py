"""PNG figures for the report: the throughput/latency curve over the sweep and the TTFT and ITL
distributions at the operating point, with the thresholds drawn in. matplotlib, Agg backend,
no external assets (the report embeds the PNGs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipe_harness.exercise.perf.thresholds import Limit

DPI = 100
SWEEP_SIZE = (12, 4)      # inches: 1200 x 400 px, the report's full width without scaling
LIMIT_STYLE = {"color": "#c0392b", "linestyle": "--", "linewidth": 1.5}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@dataclass
class CurvePoint:
    label: str                  # c8, r2.5
    throughput: float | None    # output tokens/s/GPU (median over trials)
    throughput_spread: float
    ttft_p50: float | None
    ttft_p99: float | None
    itl_p50: float | None
    itl_p99: float | None


def _limits(limits: list[Limit], *metrics: str) -> list[Limit]:
    return [lim for lim in limits if lim.metric in metrics]


def sweep_curve(points: list[CurvePoint], limits: list[Limit], out: Path, *, title: str) -> Path | None:
    """Output tokens/s/GPU against TTFT and against ITL, one marker per sweep point."""
    usable = [p for p in points if p.throughput is not None]
    if not usable:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=SWEEP_SIZE, dpi=DPI)
    panels = (("TTFT (ms)", "ttft"), ("ITL (ms)", "itl"))
    for ax, (xlabel, kind) in zip(axes, panels):
        xs50 = [getattr(p, f"{kind}_p50") for p in usable]
        xs99 = [getattr(p, f"{kind}_p99") for p in usable]
        ys = [p.throughput for p in usable]
        errs = [p.throughput_spread for p in usable]
        if all(x is not None for x in xs50):
            ax.errorbar(xs50, ys, yerr=errs, marker="o", color="#2c7fb8", label="p50", capsize=3)
            for p, x, y in zip(usable, xs50, ys):
                ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if all(x is not None for x in xs99):
            ax.plot(xs99, ys, marker="s", linestyle=":", color="#7fcdbb", label="p99")
        lat_limits = _limits(limits, f"{kind}_p50", f"{kind}_p99", f"{kind}_p90", f"{kind}_avg")
        for lim in lat_limits:
            ax.axvline(lim.value, **LIMIT_STYLE)
            ax.annotate(lim.describe(), (lim.value, 0.02),
                        xycoords=("data", "axes fraction"), rotation=90, fontsize=7, color=LIMIT_STYLE["color"])
        xs = [x for x in xs50 + xs99 if x] + [lim.value for lim in lat_limits if lim.value > 0]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")   # limits are often 10-100x the measured latency
        for lim in _limits(limits, "output_tokens_per_s_per_gpu"):
            ax.axhline(lim.value, **LIMIT_STYLE)
            ax.annotate(lim.describe(), (0.01, lim.value), xycoords=("axes fraction", "data"),
                        fontsize=7, color=LIMIT_STYLE["color"], va="bottom")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("output tokens/s/GPU")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out


def distribution(values: list[float], percentiles: dict[str, float | None], limits: list[Limit], out: Path,
                 *, title: str, xlabel: str) -> Path | None:
    """Histogram of per-request values (or, without records, the percentiles as bars) with limit lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=DPI)
    if values:
        ax.hist(values, bins=min(40, max(5, len(values) // 2)), color="#2c7fb8", alpha=0.8)
        ax.set_ylabel("requests")
        for name, value in percentiles.items():
            if value is not None:
                ax.axvline(value, color="#555555", linestyle=":", linewidth=1)
                ax.annotate(name, (value, 0.95), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                            va="top")
        top = max(max(values), *(v for v in percentiles.values() if v is not None))
        shown = [lim for lim in limits if lim.value <= 3 * top]
        for lim in shown:
            ax.axvline(lim.value, **LIMIT_STYLE)
            ax.annotate(lim.describe(), (lim.value, 0.5), xycoords=("data", "axes fraction"),
                        fontsize=7, rotation=90, color=LIMIT_STYLE["color"])
        off = [lim for lim in limits if lim not in shown]
        if off:
            text = "off scale: " + ", ".join(lim.describe() for lim in off)
            ax.annotate(text, (0.01, 0.98), xycoords="axes fraction", ha="left", va="top", fontsize=7,
                        color=LIMIT_STYLE["color"])
        ax.set_xlabel(xlabel)
    else:
        known = {k: v for k, v in percentiles.items() if v is not None}
        if not known:
            plt.close(fig)
            return None
        ax.bar(list(known), list(known.values()), color="#2c7fb8")
        for lim in limits:
            ax.axhline(lim.value, **LIMIT_STYLE)
            ax.annotate(lim.describe(), (0.01, lim.value), xycoords=("axes fraction", "data"),
                        fontsize=7, color=LIMIT_STYLE["color"], va="bottom")
        ax.set_ylabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
