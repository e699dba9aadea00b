"""The benchmark's charts: latency bars, throughput beside the echo chain, latency CDF."""
from __future__ import annotations

from pathlib import Path

from market.loadgen import percentile


def cdf_points(ordered: list[float], points: int = 200) -> list[float]:
    """Latencies (ms) at evenly spaced quantiles 0..1, for the CDF chart."""
    if not ordered:
        return []
    return [round(1000 * percentile(ordered, i / points), 4) for i in range(points + 1)]


def draw_charts(out: Path, report: dict) -> list[str]:
    """Latency bars, throughput beside the echo chain, latency CDF; returns file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    rows = report["scenarios"]
    labels = [f"{r['buyers']} buyer{'s' * (r['buyers'] != 1)} +\n"
              f"{r['sellers']} seller{'s' * (r['sellers'] != 1)}" for r in rows]
    m = report["machine"]
    note = (f"{m['cores']} cores, Python {m['python']}; {rows[0]['runs']} run(s) x "
            f"{rows[0]['ops_per_client']} ops per client")
    x = list(range(len(rows)))

    def bars(ax, offset: float, width: float, key: str, texts: list[str], **style) -> None:
        """One bar per scenario with its std as an error bar, labelled just above that."""
        values = [r[key] for r in rows]
        stds = [r[f"{key}_std"] for r in rows]
        ax.bar([p + offset for p in x], values, width, yerr=stds, capsize=3, **style)
        for p, value, std, text in zip(x, values, stds, texts):
            ax.annotate(text, (p + offset, value + std), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (key, title) in enumerate([("avg_ms", "average"), ("p50_ms", "p50"),
                                      ("p95_ms", "p95"), ("p99_ms", "p99")]):
        bars(ax, (i - 1.5) * 0.2, 0.2, key, [f"{r[key]:.3g}" for r in rows], label=title)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 2.5)  # room for the legend above the tallest bar
    ax.set_xticks(x, labels)
    ax.set_ylabel("response time (ms, log scale)")
    ax.set_xlabel("scenario (concurrent clients)")
    ax.set_title(f"Marketplace response time by scenario\n{note}; error bars: std over runs",
                 fontsize=10)
    ax.legend(title="ok operations", loc="upper left", ncols=4)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    bars(ax, -0.19, 0.38, "throughput_ops",
         [f"{r['throughput_ops']:,.0f}\n({r['ratio_vs_echo']:.2f} x echo)" for r in rows],
         label="marketplace")
    bars(ax, 0.19, 0.38, "echo_throughput_ops",
         [f"{r['echo_throughput_ops']:,.0f}" for r in rows],
         label="echo chain (client -> relay -> echo)", color="tab:gray")
    ax.set_xticks(x, labels)
    ax.set_ylabel("throughput (ok operations / s)")
    ax.set_xlabel("scenario (concurrent clients)")
    ax.set_ylim(0, 1.35 * max(r[key] + r[f"{key}_std"] for r in rows
                              for key in ("throughput_ops", "echo_throughput_ops")))
    ax.set_title(f"Throughput beside the echo chain of the same stack\n{note}; "
                 "error bars: std over runs", fontsize=10)
    ax.legend(loc="upper left", ncols=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, row in enumerate(rows):
        color = f"C{i}"
        for key, style, who in (("cdf_ms", "-", "marketplace"), ("echo_cdf_ms", ":", "echo chain")):
            points = row[key]
            if points:
                fractions = [j / (len(points) - 1) for j in range(len(points))]
                ax.plot(points, fractions, style, color=color,
                        label=f"{row['buyers']} + {row['sellers']}: {who}")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plain)
    ax.set_xlabel("response time (ms, log scale)")
    ax.set_ylabel("fraction of ok operations at or below")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"Response time distribution (CDF) per scenario\n{note}, all runs pooled",
                 fontsize=10)
    ax.legend(title="buyers + sellers", fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out / "latency_cdf.png", dpi=120)
    plt.close(fig)
    return ["latency.png", "throughput.png", "latency_cdf.png"]
