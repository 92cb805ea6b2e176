#!/usr/bin/env python3
"""Draws the HTTP load results as an SVG: requests/s and p99 latency by mode.

    python3 benches/chart.py [benches/results/http_load.tsv] [BENCHMARKS.svg]

Reads the TSV written by benches/http_load.sh (columns: mode, req_per_s, p50_ms,
p99_ms, ...). Standard library only.
"""

import csv
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
    label_w = 190
    bar_area = width - label_w - 230  # room for the value labels
    out.append(
        f'<text x="{x0}" y="{top - 14}" font-size="15" font-weight="bold">{escape(title)}</text>'
    )
    bar_h = (height - 20) / len(rows)
    base = next((float(r[key]) for r in rows if r["mode"] == "baseline"), None)
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
        if baseline_ratio and base and row["mode"] != "baseline":
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


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "benches/results/http_load.tsv"
    target = sys.argv[2] if len(sys.argv) > 2 else "BENCHMARKS.svg"
    rows = read(source)
    width, panel_h = 820, 40 + 42 * len(rows)
    height = 2 * panel_h + 115
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
    parts.append(
        f'<text x="20" y="{height - 12}" font-size="11" fill="#555">'
        f"Source: {escape(source)} (benches/http_load.sh); chart: benches/chart.py</text>"
    )
    parts.append("</svg>")
    with open(target, "w") as f:
        f.write("\n".join(parts) + "\n")
    print(f"chart.py: wrote {target}")


if __name__ == "__main__":
    main()
