#!/usr/bin/env python3
"""Draws the HTTP load results as an SVG: requests/s and p99 latency by mode.

    python3 benches/chart.py [benches/results/http_load.tsv] [BENCHMARKS.svg]
    python3 benches/chart.py --peers benches/results/peers.txt [BENCHMARKS.svg]
    python3 benches/chart.py --peers benches/results/peers.txt --targets benches/results/targets.tsv

With --targets, a third panel draws each performance target of issue 11 as measured
against its limit (columns: target, measured, limit, better = lower|higher, unit,
source): a bar per target, scaled so that the limit sits on one line, green where it is
met and red where it is missed.

Reads the TSV written by benches/http_load.sh (columns: mode, req_per_s, p50_ms,
p99_ms, ...), or with --peers the `RESULT peer=...` lines of ../shared/peers/bench.sh
runs (the peer names of its README: rust-naive-noredis, rust-naive, ours-memory,
ours-redis, ours-mirror), drawing each server's median over its runs. Standard library
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
    "baseline": "baseline (jsonwebtoken only)",
    "baseline_redis": "baseline + hand-written GET",
    "memory": "layer + InMemoryStore",
    "mirror": "layer + MirrorStore",
    "redis": "layer + RedisStore",
}

PEER_LABELS = {
    "baseline": "rust-naive-noredis (no revocation)",
    "baseline_redis": "rust-naive (hand-written GET)",
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
    """Median req/s and p99 per server over the RESULT lines of bench.sh runs."""
    runs = {}
    for line in open(path):
        m = re.search(r"RESULT peer=(\S+) rps=([\d.]+) .*?p99=([\d.]+)(ms|us)", line)
        if m and m.group(1) in PEER_MODES:
            p99 = float(m.group(3)) / (1000 if m.group(4) == "us" else 1)
            runs.setdefault(m.group(1), []).append((float(m.group(2)), p99))
    if not runs:
        sys.exit(f"chart.py: no RESULT lines of known peers in {path}")
    return [
        {
            "mode": PEER_MODES[peer],
            "req_per_s": statistics.median(r for r, _ in runs[peer]),
            "p99_ms": statistics.median(p for _, p in runs[peer]),
        }
        for peer in PEER_MODES
        if peer in runs
    ]


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        sys.exit(f"chart.py: no rows in {path}")
    return rows


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
    base = next((float(r[key]) for r in rows if r["mode"] == "baseline"), None)
    hand_written = next((float(r[key]) for r in rows if r["mode"] == "baseline_redis"), None)
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
        # Redis is compared with the hand-written Redis check; the rest with no revocation.
        if baseline_ratio and row["mode"] == "redis" and hand_written:
            text += f"  ({100 * value / hand_written:.0f}% of hand-written GET)"
        elif baseline_ratio and base and row["mode"] != "baseline":
            text += f"  ({100 * value / base:.0f}% of baseline)"
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
        f"Targets (issue 11): measured against the limit, the line</text>"
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
    rows = read_peers(source) if peers else read(source)
    if peers:
        LABELS.update(PEER_LABELS)
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
        f"Source: {escape(source)} ({'../shared/peers/bench.sh, medians' if peers else 'benches/http_load.sh'}); chart: benches/chart.py"
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
