#!/usr/bin/env python3
"""Draws the HTTP load results as an SVG: requests/s and p99 latency by mode.

    python3 benches/chart.py [benches/results/http_load.tsv] [BENCHMARKS.svg]
    python3 benches/chart.py --peers benches/results/peers-2026-12-04.txt --targets benches/results/targets.tsv

With --targets, a third panel draws each performance target of issue 11 as measured
against its limit (columns: target, measured, limit, better = lower|higher, unit,
source): a bar per target, scaled so that the limit sits on one line, green where it is
met and red where it is missed.

Reads the TSV written by benches/http_load.sh (columns: mode, req_per_s, p99_ms, ...,
and round when there are several), or with --peers the `RESULT peer=...` lines of the
earlier peer rig's runs kept in benches/results/ (peer names rust-naive-noredis,
rust-naive, ours-memory, ours-redis, ours-mirror: the same five servers as
http_load.sh's modes), drawing each server's median over its runs. Standard library
only.
"""

import csv
import re
import statistics
import sys
from xml.sax.saxutils import escape

COLORS = {
    "baseline": "#7f7f7f",
    "baseline_redis": "#ff7f0e",
    "memory": "#2ca02c",
    "mirror": "#1f77b4",
    "redis": "#d62728",
}
LABELS = {
    "baseline": "hand-written, no revocation",
    "baseline_redis": "hand-written, one Redis GET",
    "memory": "axum_logout, InMemoryStore",
    "mirror": "axum_logout, MirrorStore",
    "redis": "axum_logout, RedisStore",
}

# bench.sh peer names, as the modes of http_load.sh.
PEER_MODES = {
    "rust-naive-noredis": "baseline",
    "rust-naive": "baseline_redis",
    "ours-memory": "memory",
    "ours-redis": "redis",
    "ours-mirror": "mirror",
}


def read_peers(path):
    """Median req/s and p99 per server over the RESULT lines of the peer rig's runs, the
    servers run in rounds (a round ends where a server comes again)."""
    rounds, current = [], {}
    for line in open(path):
        m = re.search(r"RESULT peer=(\S+) rps=([\d.]+) .*?p99=([\d.]+)(ms|us)", line)
        if m and m.group(1) in PEER_MODES:
            mode = PEER_MODES[m.group(1)]
            if mode in current:
                rounds.append(current)
                current = {}
            p99 = float(m.group(3)) / (1000 if m.group(4) == "us" else 1)
            current[mode] = {"mode": mode, "req_per_s": m.group(2), "p99_ms": p99}
    if current:
        rounds.append(current)
    if not rounds:
        sys.exit(f"chart.py: no RESULT lines of known peers in {path}")
    return medians(
        [dict(row, round=str(n)) for n, servers in enumerate(rounds) for row in servers.values()]
    )


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        sys.exit(f"chart.py: no rows in {path}")
    return rows


# What each mode is compared with: the layer in memory or a mirror with no revocation at
# all, the layer on Redis with the hand-written Redis check.
AGAINST = {"memory": "baseline", "mirror": "baseline", "redis": "baseline_redis"}


def medians(rows):
    """One row per mode: its median req/s and p99 over the rounds, and the median over the
    rounds of its req/s against the mode it is compared with in the same round."""
    by_round = {}
    for row in rows:
        by_round.setdefault(row.get("round", "1"), {})[row["mode"]] = row
    modes = list(dict.fromkeys(row["mode"] for row in rows))
    out = []
    for mode in modes:
        mine = [servers[mode] for servers in by_round.values() if mode in servers]
        ref = AGAINST.get(mode)
        ratios = [
            float(servers[mode]["req_per_s"]) / float(servers[ref]["req_per_s"])
            for servers in by_round.values()
            if mode in servers and ref in servers
        ]
        out.append(
            {
                "mode": mode,
                "req_per_s": statistics.median(float(r["req_per_s"]) for r in mine),
                "p99_ms": statistics.median(float(r["p99_ms"]) for r in mine),
                "ratio": statistics.median(ratios) if ratios else None,
                "rounds": len(ratios),
            }
        )
    return out


def panel(rows, key, title, unit, fmt, x0, width, height, top, baseline_ratio):
    """One horizontal bar chart; returns SVG elements."""
    out = []
    values = [float(r[key]) for r in rows]
    vmax = max(values) or 1.0
    label_w = 235
    bar_area = width - label_w - 250  # room for the value labels
    out.append(
        f'<text x="{x0}" y="{top - 14}" font-size="15" font-weight="bold">{escape(title)}</text>'
    )
    bar_h = (height - 20) / len(rows)
    for i, (row, value) in enumerate(zip(rows, values)):
        y = top + i * bar_h
        w = bar_area * value / vmax
        color = COLORS.get(row["mode"], "#9467bd")
        label = LABELS.get(row["mode"], row["mode"])
        out.append(
            f'<text x="{x0 + label_w - 8}" y="{y + bar_h * 0.55}" font-size="12" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        out.append(
            f'<rect x="{x0 + label_w}" y="{y + bar_h * 0.15:.1f}" width="{w:.1f}" '
            f'height="{bar_h * 0.7:.1f}" fill="{color}"/>'
        )
        text = fmt(value) + unit
        if baseline_ratio and row.get("ratio") is not None:
            what = "hand-written GET" if AGAINST[row["mode"]] == "baseline_redis" else "no revocation"
            rounds = f", median of {row['rounds']} rounds" if row["rounds"] > 1 else ""
            text += f"  ({100 * row['ratio']:.0f}% of {what}{rounds})"
        out.append(
            f'<text x="{x0 + label_w + w + 6:.1f}" y="{y + bar_h * 0.55}" font-size="12">'
            f"{escape(text)}</text>"
        )
    out.append(
        f'<line x1="{x0 + label_w}" y1="{top}" x2="{x0 + label_w}" y2="{top + height - 20}" '
        f'stroke="#333" stroke-width="1"/>'
    )
    return out


def targets_panel(rows, x0, width, top):
    """Each target as measured / limit (limit / measured where higher is better), so
    that 1.0, the limit, is one vertical line and a bar left of it is a target met."""
    out = [
        f'<text x="{x0}" y="{top - 14}" font-size="15" font-weight="bold">'
        f"Targets: each measured against its limit, the dashed line</text>"
    ]
    label_w, bar_h = 330, 24
    scale = (width - label_w - 200) / 1.5  # the limit at two thirds of the bar area
    limit_x = x0 + label_w + scale
    for i, row in enumerate(rows):
        measured, limit = float(row["measured"]), float(row["limit"])
        higher = row["better"] == "higher"
        if limit == 0:
            ratio = 0.0 if measured == 0 else 1.5
        else:
            ratio = limit / measured if higher and measured else measured / limit
        met = measured >= limit if higher else measured <= limit
        y = top + i * bar_h
        w = max(scale * min(ratio, 1.5), 2.0)
        out.append(
            f'<text x="{x0 + label_w - 8}" y="{y + bar_h * 0.62}" font-size="12" '
            f'text-anchor="end">{escape(row["target"])}</text>'
        )
        out.append(
            f'<rect x="{x0 + label_w}" y="{y + bar_h * 0.15:.1f}" width="{w:.1f}" '
            f'height="{bar_h * 0.7:.1f}" fill="{"#2ca02c" if met else "#d62728"}"/>'
        )
        sign = "≥" if higher else "≤"
        unit = row["unit"]
        sep = "" if unit in ("", "%", "×") else " "
        text = f'{row["measured"]}{sep}{unit} (target {sign} {row["limit"]}{sep}{unit})'
        out.append(
            f'<text x="{x0 + label_w + max(w, scale) + 8:.1f}" y="{y + bar_h * 0.62}" '
            f'font-size="12">{escape(text)}</text>'
        )
    bottom = top + len(rows) * bar_h
    out.append(
        f'<line x1="{limit_x:.1f}" y1="{top - 4}" x2="{limit_x:.1f}" y2="{bottom + 4}" '
        f'stroke="#333" stroke-width="1.5" stroke-dasharray="4 3"/>'
    )
    return out, bottom


def main():
    args = sys.argv[1:]
    targets, targets_source = None, None
    if "--targets" in args:
        at = args.index("--targets")
        if at + 1 >= len(args):
            sys.exit("chart.py: --targets needs a TSV path")
        targets_source = args[at + 1]
        targets = read(targets_source)
        del args[at : at + 2]
    peers = bool(args) and args[0] == "--peers"
    if peers:
        args = args[1:]
    source = args[0] if args else ("benches/results/peers.txt" if peers else "benches/results/http_load.tsv")
    target = args[1] if len(args) > 1 else "BENCHMARKS.svg"
    rows = read_peers(source) if peers else medians(read(source))
    width, panel_h = 820, 40 + 42 * len(rows)
    targets_h = 75 + 24 * len(targets) if targets else 0
    height = 2 * panel_h + 115 + targets_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="20" y="28" font-size="17" font-weight="bold">GET /me, HS256, wrk 64 connections, '
        f"server on 1 pinned core</text>",
    ]
    parts += panel(
        rows, "req_per_s", "Throughput (requests/s, higher is better)", " req/s",
        lambda v: f"{v:,.0f}", 20, width - 40, panel_h, 70, True,
    )
    parts += panel(
        rows, "p99_ms", "p99 latency (ms, lower is better)", " ms",
        lambda v: f"{v:.2f}", 20, width - 40, panel_h, 70 + panel_h + 30, False,
    )
    if targets:
        drawn, _ = targets_panel(targets, 20, width - 40, 70 + 2 * panel_h + 60)
        parts += drawn
    parts.append(
        f'<text x="20" y="{height - 12}" font-size="11" fill="#555">'
        f"Source: {escape(source)} (medians per server{', peer rig' if peers else ', benches/http_load.sh'}); chart: benches/chart.py"
        + "</text>"
    )
    if targets:
        parts.append(
            f'<text x="20" y="{height - 28}" font-size="11" fill="#555">'
            f"Targets: {escape(targets_source)} (each row names the bench that measured it; BENCHMARKS.md gives the commands)</text>"
        )
    parts.append("</svg>")
    with open(target, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"chart.py: wrote {target}")


if __name__ == "__main__":
    main()
