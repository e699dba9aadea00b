"""The benchmark's charts: latency bars, throughput and CPU per operation beside the echo
chain, latency CDF; latency by op on a small and a large market; the soak minute by minute.

Error bars are the standard deviation over runs, drawn (and said so) only with two runs
or more: one run has no spread."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loadgen import percentile


def cdf_points(ordered: list[float], points: int = 200) -> list[float]:
    """Latencies (ms) at evenly spaced quantiles 0..1, for the CDF chart."""
    if not ordered:
        return []
    return [round(1000 * percentile(ordered, i / points), 4) for i in range(points + 1)]


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only (imported late: only charts need it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


@dataclass
class ScenarioAxes:
    """What the charts by scenario share: the rows, their places and labels on the x axis,
    the runs per scenario and the note for the titles."""

    rows: list[dict]
    x: list[int]
    labels: list[str]
    runs: int
    note: str


def scenario_axes(report: dict) -> ScenarioAxes:
    rows = report["scenarios"]
    labels = [f"{r['buyers']} buyer{'s' * (r['buyers'] != 1)} +\n"
              f"{r['sellers']} seller{'s' * (r['sellers'] != 1)}" for r in rows]
    m = report["machine"]
    runs = rows[0]["runs"]
    note = (f"{m['cores']} cores, Python {m['python']}; {runs} run{'s' * (runs != 1)} x "
            f"{rows[0]['ops_per_client']} ops per client")
    return ScenarioAxes(rows, list(range(len(rows))), labels, runs, note)


def draw_charts(out: Path, report: dict) -> list[str]:
    """Latency bars, throughput beside the echo chain, latency CDF, CPU per operation;
    returns the file names."""
    axes = scenario_axes(report)
    draw_latency_chart(out, axes)
    draw_throughput_chart(out, axes)
    draw_cdf_chart(out, axes)
    return ["latency.png", "throughput.png", "latency_cdf.png"] + draw_cpu_chart(out, report)


def scenario_bars(ax, axes: ScenarioAxes, offset: float, width: float, key: str,
                  texts: list[str], **style) -> None:
    """One bar per scenario with its std as an error bar (from two runs on), labelled just
    above that."""
    values = [r[key] for r in axes.rows]
    stds = [r[f"{key}_std"] if axes.runs > 1 else 0.0 for r in axes.rows]
    ax.bar([p + offset for p in axes.x], values, width,
           yerr=stds if axes.runs > 1 else None, capsize=3, **style)
    for p, value, std, text in zip(axes.x, values, stds, texts):
        ax.annotate(text, (p + offset, value + std), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)


def plain_log_scale(axis) -> None:
    """A log scale labelled 1, 2, 5, 10, ... as plain numbers (one axis of a chart)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())  # else a short range labels every minor tick


def save(plt, fig, out: Path, name: str) -> None:
    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    plt.close(fig)


def draw_latency_chart(out: Path, axes: ScenarioAxes) -> None:
    """latency.png: average, p50, p95 and p99 by scenario, on a log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (key, title) in enumerate([("avg_ms", "average"), ("p50_ms", "p50"),
                                      ("p95_ms", "p95"), ("p99_ms", "p99")]):
        scenario_bars(ax, axes, (i - 1.5) * 0.2, 0.2, key,
                      [f"{r[key]:.3g}" for r in axes.rows], label=title)
    ax.set_yscale("log")
    plain_log_scale(ax.yaxis)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 2.5)  # room for the legend above the tallest bar
    ax.set_xticks(axes.x, axes.labels)
    ax.set_ylabel("response time (ms, log scale)")
    ax.set_xlabel("scenario (concurrent clients)")
    ax.set_title(f"Marketplace response time by scenario\n{axes.note}; "
                 f"{error_bars_note(axes.runs)}", fontsize=10)
    ax.legend(title="ok operations", loc="upper left", ncols=4)
    ax.grid(axis="y", alpha=0.3)
    save(plt, fig, out, "latency.png")


def draw_throughput_chart(out: Path, axes: ScenarioAxes) -> None:
    """throughput.png: ok operations per second by scenario, beside the echo chain's."""
    plt = pyplot()
    rows = axes.rows
    fig, ax = plt.subplots(figsize=(9, 5.5))
    scenario_bars(ax, axes, -0.19, 0.38, "throughput_ops",
                  [f"{r['throughput_ops']:,.0f}\n({r['ratio_vs_echo']:.2f} x echo)"
                   for r in rows], label="marketplace")
    scenario_bars(ax, axes, 0.19, 0.38, "echo_throughput_ops",
                  [f"{r['echo_throughput_ops']:,.0f}" for r in rows],
                  label="echo chain (client -> relay -> echo)", color="tab:gray")
    ax.set_xticks(axes.x, axes.labels)
    ax.set_ylabel("throughput (ok operations / s)")
    ax.set_xlabel("scenario (concurrent clients)")
    ax.set_ylim(0, 1.35 * max(r[key] + r[f"{key}_std"] for r in rows
                              for key in ("throughput_ops", "echo_throughput_ops")))
    ax.set_title(f"Throughput beside the echo chain of the same stack\n{axes.note}; "
                 f"{error_bars_note(axes.runs)}", fontsize=10)
    ax.legend(loc="upper left", ncols=2)
    ax.grid(axis="y", alpha=0.3)
    save(plt, fig, out, "throughput.png")


def draw_cdf_chart(out: Path, axes: ScenarioAxes) -> None:
    """latency_cdf.png: each scenario's response time distribution, all runs pooled, the
    marketplace's solid and the echo chain's dotted."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, row in enumerate(axes.rows):
        for key, style, who in (("cdf_ms", "-", "marketplace"), ("echo_cdf_ms", ":", "echo chain")):
            points = row[key]
            if points:
                fractions = [j / (len(points) - 1) for j in range(len(points))]
                ax.plot(points, fractions, style, color=f"C{i}",
                        label=f"{row['buyers']} + {row['sellers']}: {who}")
    ax.set_xscale("log")
    plain_log_scale(ax.xaxis)
    ax.set_xlabel("response time (ms, log scale)")
    ax.set_ylabel("fraction of ok operations at or below")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"Response time distribution (CDF) per scenario\n{axes.note}, all runs "
                 "pooled", fontsize=10)
    ax.legend(title="buyers + sellers", fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    save(plt, fig, out, "latency_cdf.png")


def error_bars_note(runs: int) -> str:
    return (f"error bars: std over {runs} runs" if runs > 1
            else "1 run: no spread, no error bars")


# How each way of reading a process's CPU is named in titles (market.ops.launch.CpuReading).
CPU_SOURCES = {"stats": "its Stats' cpu_s (process_time)",
               "schedstat": "/proc/PID/task/*/schedstat",
               "ticks": "/proc/PID/stat ticks"}


def below_text(way: dict | None) -> str:
    """What a figure below its resolution is shown as: "< 10 ms tick" (read from
    /proc/PID/stat), "< 1 µs" (Stats), "< 1 ns" (schedstat); "n/a" if never read."""
    resolution = (way or {}).get("resolution_s")
    source = (way or {}).get("source")
    if resolution is None or source not in CPU_SOURCES:
        return "n/a"
    if source == "ticks":
        return f"< {resolution * 1e3:g} ms tick"
    return f"< {resolution * 1e6:g} µs" if resolution >= 1e-6 else f"< {resolution * 1e9:g} ns"


def cpu_text(value_us: float, way: dict | None) -> str:
    """A process's CPU per ok operation as shown: µs, or what it was below (``way``:
    its entry of ``<who>_cpu_resolution``; None: nothing known, shown as measured)."""
    if way is not None and way["below_resolution"]:
        return below_text(way)
    return f"{value_us:,.0f}"


def cpu_sources_text(rows: list[dict]) -> str:
    """How the CPU figures of ``rows`` were read, for titles: 'from its Stats' cpu_s
    (process_time)', or several ways joined with 'or'."""
    used = {way["source"] for r in rows for who in ("services", "echo")
            for way in (r.get(f"{who}_cpu_resolution") or {}).values()}
    named = [text for source, text in CPU_SOURCES.items() if source in used]
    return "from " + (" or ".join(named) if named else "nothing")


def cpu_stack_label(row: dict, who: str) -> str:
    """The text above one stack of the CPU chart: the total (µs per ok operation), a line
    per process that spent less than could be read ("customer database < 10 ms tick")
    and, above the services, the ratio to the echo chain ("n/a" when a process of
    either is below resolution: the ratio would mean nothing)."""
    values = row[f"{who}_cpu_us_per_op"] or {}
    ways = row.get(f"{who}_cpu_resolution") or {}
    below = [name for name in values if (ways.get(name) or {}).get("below_resolution")]
    if values and len(below) == len(values) and len({below_text(ways[n]) for n in below}) == 1:
        lines = [below_text(ways[below[0]])]  # all alike: the total says the same
    else:
        lines = [f"{row[f'{who}_cpu_us_per_op_total'] or 0:,.0f}"]
        lines += [f"{name} {below_text(ways[name])}" for name in below]
    if who == "services" and row["echo_cpu_us_per_op"] and values:
        ratio = row["cpu_per_op_vs_echo"]
        lines.append(f"({ratio:.2f} x echo)" if ratio else "(x echo: n/a)")
    return "\n".join(lines)


def draw_cpu_chart(out: Path, report: dict) -> list[str]:
    """CPU per ok operation per scenario: the services stacked beside the echo chain's
    processes stacked; nothing when the services were not ours to measure."""
    rows = report["scenarios"]
    if not any(r["services_cpu_us_per_op"] for r in rows):
        return []
    plt = pyplot()
    runs = rows[0]["runs"]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for offset, who, label, palette in ((-0.2, "services", "", "tab10"),
                                        (0.2, "echo", "echo chain: ", "Greys")):
        cpu_stack(ax, plt, rows, offset, who, label, palette)
    x = list(range(len(rows)))
    ax.set_xticks(x, [f"{r['buyers']} + {r['sellers']}" for r in rows])
    ax.set_xlabel("scenario (buyers + sellers)")
    ax.set_ylabel("CPU per ok operation (µs)")
    top = max((r["services_cpu_us_per_op_total"] or 0) + (r["services_cpu_us_per_op_total_std"]
                                                          or 0) for r in rows)
    ax.set_ylim(0, 1.5 * max(top, max(r["echo_cpu_us_per_op_total"] or 0 for r in rows), 1))
    m = report["machine"]
    ax.set_title(f"CPU each process spent per ok operation (timed part only, "
                 f"{cpu_sources_text(rows)})\n{m['cores']} cores, Python {m['python']}; "
                 f"left: the marketplace's services, right: the echo chain; "
                 f"{error_bars_note(runs)}", fontsize=10)
    ax.legend(loc="upper left", ncols=3, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save(plt, fig, out, "cpu_per_op.png")
    return ["cpu_per_op.png"]


def cpu_stack(ax, plt, rows: list[dict], offset: float, who: str, label: str,
              palette: str) -> None:
    """One stack per scenario of ``who``'s processes ("services" or "echo"), its std as an
    error bar (from two runs on) and ``cpu_stack_label`` above it. A process below
    resolution adds nothing to the stack: the label says what it was below."""
    runs = rows[0]["runs"]
    x = [p + offset for p in range(len(rows))]
    names = next(list(r[f"{who}_cpu_us_per_op"]) for r in rows if r[f"{who}_cpu_us_per_op"])
    colors = (plt.get_cmap(palette)(range(len(names))) if who == "services"
              else plt.get_cmap(palette)([0.45, 0.7]))
    bottom = [0.0] * len(rows)
    for name, color in zip(names, colors):
        values = [(r[f"{who}_cpu_us_per_op"] or {}).get(name, 0.0) for r in rows]
        ax.bar(x, values, 0.38, bottom=bottom, color=color, label=f"{label}{name}")
        bottom = [b + v for b, v in zip(bottom, values)]
    stds = [r[f"{who}_cpu_us_per_op_total_std"] or 0.0 for r in rows]
    if runs > 1:
        ax.errorbar(x, bottom, yerr=stds, fmt="none", ecolor="black", capsize=3)
    for p, row, total, std in zip(x, rows, bottom, stds):
        if row[f"{who}_cpu_us_per_op"]:
            ax.annotate(cpu_stack_label(row, who), (p, total + (std if runs > 1 else 0)),
                        xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8)


def draw_size_chart(out: Path, report: dict) -> str:
    """Latency by op on the nearly empty and the large market: p50 bars (std over runs),
    a mark at p99, and the p50 ratio large / small clear above each pair (red past 2x)."""
    plt = pyplot()
    rows = report["ops"]
    markets = report["config"]["markets"]
    runs = report["config"]["runs"]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(11, 6))
    for offset, name, color in ((-0.2, "small", "tab:blue"), (0.2, "large", "tab:orange")):
        shape = markets[name]
        where = [p + offset for p in x]
        ax.bar(where, [r[name]["p50_ms"] for r in rows], 0.4, color=color,
               yerr=[r[name]["p50_ms_std"] for r in rows] if runs > 1 else None, capsize=2,
               label=f"{name}: {shape['items']:,} items, a seller with {shape['seller_items']:,}, "
                     f"a buyer with {shape['purchases']:,} purchases (p50)")
        ax.scatter(where, [r[name]["p99_ms"] for r in rows], marker="_", s=250, color="black",
                   label="p99" if name == "large" else None)
    for p, row in zip(x, rows):
        top = max(max(row[name]["p99_ms"], row[name]["p50_ms"] + row[name]["p50_ms_std"])
                  for name in ("small", "large"))
        text = f"{row['ratio_p50']:.2f}x" if row["ratio_p50"] is not None else "-"
        ax.annotate(text, (p, top), xytext=(0, 9), textcoords="offset points", ha="center",
                    va="bottom", fontsize=8, color="black" if row["within_2x"] else "red")
    ax.set_ylim(0, 1.4 * max(row[name]["p99_ms"] for row in rows for name in markets))
    ax.set_xticks(x, [row["op"] for row in rows], fontsize=8, rotation=25, ha="right",
                  rotation_mode="anchor")
    ax.set_ylabel("response time (ms)")
    m = report["machine"]
    config = report["config"]
    ax.set_title(f"Response time by op, nearly empty vs large market; above: p50 ratio "
                 f"large / small (contract: within 2x)\n{m['cores']} cores, Python "
                 f"{m['python']}; one request at a time, {config['samples_per_op_per_run']} "
                 f"samples per op per run; {error_bars_note(runs)}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "latency_by_size.png", dpi=120)
    plt.close(fig)
    return "latency_by_size.png"


def draw_soak_chart(out: Path, report: dict) -> str:
    """The soak by full minute (a shorter tail is left out, and said so): ok ops/s and
    p99; each service's RSS; the data kept."""
    plt = pyplot()
    windows = report["windows"]
    middles = [(w["start_s"] + w["seconds"] / 2) / 60 for w in windows]
    ends = [0] + [(w["start_s"] + w["seconds"]) / 60 for w in windows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    top.bar(middles, [w["throughput_ops"] for w in windows],
            [0.8 * w["seconds"] / 60 for w in windows], color="tab:blue", label="ok ops/s")
    top.set_ylabel("throughput (ok operations / s)")
    latency = top.twinx()
    latency.plot(middles, [w["p99_ms"] for w in windows], "o-", color="tab:red", label="p99")
    latency.set_ylabel("p99 response time (ms)")
    latency.set_ylim(0, 1.2 * max(w["p99_ms"] for w in windows))
    errors = report["errors"] + report["unexpected"]  # the tail's too
    ratio = report["last_vs_first_throughput"]
    tail = report["tail"]
    top.set_title(f"Soak, {report['scenario']} (buyers x sellers), {report['seconds']:g} s: "
                  f"errors {errors}, throughput of the last full minute / the first "
                  + (f"{ratio:.2f}" if ratio is not None else "- (one minute)")
                  + (f"\n(the last {tail['seconds']:g} s, not a full minute, are not shown)"
                     if tail else ""), fontsize=10)
    top.legend(loc="lower left", fontsize=8)
    latency.legend(loc="lower right", fontsize=8)
    top.grid(axis="y", alpha=0.3)
    if report["rss_kb_start"]:
        for name in report["rss_kb_start"]:
            middle.plot(ends, [report["rss_kb_start"][name] / 1024]
                        + [w["rss_kb"][name] / 1024 for w in windows], "o-", label=name)
        middle.legend(fontsize=8)
    middle.set_ylabel("resident memory (MB)")
    middle.set_title("each service's RSS at the end of every minute", fontsize=10)
    middle.grid(alpha=0.3)
    first = windows[0]
    bottom.plot(ends, [first["items_total"] - first["items_added"]]
                + [w["items_total"] for w in windows], "o-", label="items")
    bottom.plot(ends, [0] + [w["purchases_total"] for w in windows], "o-", label="purchases")
    bottom.set_ylabel("kept by the databases")
    bottom.set_xlabel("minute of the soak")
    bottom.set_title(f"data added by the load (plus {report['data_kept']['accounts']} accounts "
                     "and sessions)", fontsize=10)
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=120)
    plt.close(fig)
    return "soak.png"
