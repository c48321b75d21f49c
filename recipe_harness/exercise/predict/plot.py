"""The predicted sweep of one recipe on one hardware profile as a PNG: output tokens/s/GPU against TTFT and
against ITL, one marker per concurrency, the profile's limits drawn in (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from recipe_harness.exercise.perf.thresholds import Limit

LIMIT_STYLE = {"color": "#c0392b", "linestyle": "--", "linewidth": 1.5}


def sweep_plot(points: list[tuple[str, float, float, float]], limits: list[Limit], out: Path, *, title: str) -> Path | None:
    """``points``: (label, TTFT ms, ITL ms, output tokens/s/GPU). Returns the PNG, or ``None`` without points."""
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), dpi=100)
    try:
        for ax, (xlabel, idx, prefix) in zip(axes, (("predicted TTFT (ms)", 1, "ttft"), ("predicted ITL (ms)", 2, "itl")),
                                             strict=True):
            xs = [p[idx] for p in points]
            ys = [p[3] for p in points]
            ax.plot(xs, ys, marker="o", color="#2c7fb8")
            for p in points:
                ax.annotate(p[0], (p[idx], p[3]), textcoords="offset points", xytext=(4, 4), fontsize=8)
            for lim in limits:
                if lim.metric.startswith(prefix + "_") or (prefix == "itl" and lim.metric.startswith("tpot_")):
                    ax.axvline(lim.value, **LIMIT_STYLE)
                    ax.annotate(f"{lim.metric} {lim.value:g}", (lim.value, max(ys)), fontsize=8, color="#c0392b",
                                rotation=90, va="top", ha="right")
                elif lim.metric == "output_tokens_per_s_per_gpu":
                    ax.axhline(lim.value, **LIMIT_STYLE)
                    ax.annotate(f"{lim.metric} {lim.value:g}", (min(xs), lim.value), fontsize=8, color="#c0392b",
                                va="bottom")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("predicted output tokens/s/GPU")
            ax.grid(True, alpha=0.3)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
