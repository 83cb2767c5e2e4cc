"""Chart and table primitives for `wdtk report`: histogram binning, and inline-SVG bars, histograms and the funnel.

Everything here returns plain data or HTML strings with every text passed through `esc`: record text is web text,
untrusted. No scripts, no external resources.
"""

from __future__ import annotations

import html
from collections import Counter

COLORS = {"pages": "#7b8794", "QA": "#3b6fd8", "trajectories": "#2f9e6e", "questions": "#8a5cc7"}
MAX_TEXT = 600  # characters of any one web-sourced text kept for the page: a report, not a dump


def clip(text: object, limit: int = MAX_TEXT) -> str:
    """`text` as a string of at most `limit` characters, marked when cut."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def histogram(values: Counter, max_bins: int = 15) -> dict:
    """Bins (label, lo, hi, count) and summary numbers of integer values counted in `values` ({value: n})."""
    n = sum(values.values())
    if not n:
        return {"n": 0, "bins": []}
    lo, hi = min(values), max(values)
    width = _nice_width((hi - lo + 1) / max_bins)
    while (hi - lo // width * width) // width >= max_bins:  # starting on a round number can add a bin
        width = _nice_width(width + 1)
    start = lo // width * width
    bins = []
    for left in range(start, hi + 1, width):
        right = left + width - 1
        label = str(left) if width == 1 else f"{left:,}–{right:,}"
        bins.append({"label": label, "lo": left, "hi": right, "count": 0})
    for value, count in values.items():
        bins[(value - start) // width]["count"] += count
    ordered = sorted(values.items())
    return {
        "n": n,
        "bins": bins,
        "mean": round(sum(v * c for v, c in ordered) / n, 2),
        "median": _quantile(ordered, n, 0.5),
        "p90": _quantile(ordered, n, 0.9),
        "max": hi,
    }


def _nice_width(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least `raw`: bin edges people can read."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= raw:
                return step * scale
        scale *= 10


def _quantile(ordered: list[tuple[int, int]], n: int, q: float) -> int:
    rank, seen = q * (n - 1), 0
    for value, count in ordered:
        seen += count
        if seen > rank:
            return value
    return ordered[-1][0]


def esc(value: object) -> str:
    """Text (from a record: untrusted) escaped for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: object) -> str:
    """A count with thousands separators; a dash when unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–" if value is None else esc(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def compact(value: int) -> str:
    """1500 -> 1.5k: short axis labels."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(value)


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def hbars(rows: list[tuple[str, int]], color: str = "#3b6fd8", width: int = 500, label_w: int = 190) -> str:
    """Horizontal bar chart of (label, count) rows as inline SVG."""
    if not rows:
        return '<p class="note">nothing</p>'
    top, row_h = max(c for _, c in rows) or 1, 24
    bar_w = width - label_w - 60
    parts = [f'<svg width="{width}" height="{row_h * len(rows) + 4}" role="img">']
    for i, (label, count) in enumerate(rows):
        y, w = i * row_h + 2, max(2, round(bar_w * count / top)) if count else 0
        parts.append(
            f"<g><title>{esc(label)}: {count:,}</title>"
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="13" fill="#323f4b">'
            f"{esc(_short(label))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row_h - 7}" rx="3" fill="{color}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 15}" font-size="12.5" fill="#52606d">{count:,}</text></g>'
        )
    return "".join(parts) + "</svg>"


def histogram_svg(hist: dict, color: str, caption: str, width: int = 470, height: int = 200) -> str:
    """Vertical-bar histogram (bins from report.histogram) as inline SVG, with mean, median and p90 underneath."""
    bins = hist.get("bins") or []
    if not bins:
        return '<p class="note">no values</p>'
    left, base = 18, height - 40
    step = min((width - 2 * left) / len(bins), 56)  # a few bins stay bars, not slabs
    plot_w, top = step * len(bins), max(b["count"] for b in bins) or 1
    every = max(1, round(len(bins) / 12))  # at most ~12 axis labels
    parts = [f'<svg width="{max(round(plot_w) + 2 * left, 300)}" height="{height}" role="img">']
    for i, b in enumerate(bins):
        h, x = (base - 18) * b["count"] / top, left + i * step
        parts.append(f"<g><title>{esc(b['label'])}: {b['count']:,}</title>")
        parts.append(
            f'<rect x="{x + 1.5:.1f}" y="{base - h:.1f}" width="{step - 3:.1f}" height="{h:.1f}" fill="{color}"/>'
        )
        if b["count"]:
            parts.append(_text(x + step / 2, base - h - 4, compact(b["count"]), 11, "middle"))
        if i % every == 0:  # single values sit under their bar; ranges show where the bin starts
            single = b["lo"] == b["hi"]
            parts.append(
                _text(
                    x + step / 2 if single else x, base + 15, b["label"] if single else compact(b["lo"]), 11, "middle"
                )
            )
        parts.append("</g>")
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w:.1f}" y2="{base}" stroke="#9aa5b1"/>')
    parts.append(_text(left, height - 6, caption, 12, "start", "#323f4b") + "</svg>")
    stats = ", ".join(f"{k} {num(hist[k])}" for k in ("n", "mean", "median", "p90", "max") if k in hist)
    return "".join(parts) + f'<div class="note">{esc(stats)}</div>'


def _text(x: float, y: float, text: object, size: float, anchor: str = "start", fill: str = "#52606d") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}">{esc(text)}</text>'


def funnel_svg(steps: list[dict], width: int = 1010) -> str:
    """The funnel: one centred bar per step, scaled within its unit (pages, QA, trajectories, questions)."""
    label_w, num_w, row_h = 250, 290, 34
    bar_w, mid = width - label_w - num_w, label_w + (width - label_w - num_w) / 2
    tops: dict[str, int] = {}
    for s in steps:
        tops[s["unit"]] = max(tops.get(s["unit"], 0), s["count"] or 0)
    parts, y, unit = [], 0, None
    for s in steps:
        if unit is not None and s["unit"] != unit:  # a thin rule between units
            parts.append(f'<line x1="0" y1="{y + 5}" x2="{width}" y2="{y + 5}" stroke="#e1e4e8"/>')
            y += 10
        unit, count = s["unit"], s["count"]
        parts.append(f'<g class="step" data-step="{esc(s["key"])}" data-count="{"" if count is None else count}">')
        parts.append(_text(label_w - 12, y + 22, s["label"], 14, "end", "#1f2933"))
        if count is None:
            parts.append(
                f'<rect x="{label_w + 4}" y="{y + 5}" width="{bar_w - 8}" height="{row_h - 10}" rx="5" fill="none" '
                f'stroke="#cbd2d9" stroke-dasharray="5 4"/>' + _text(mid, y + 22, "not run", 13, "middle", "#9aa5b1")
            )
        else:
            w = max(3.0, (bar_w - 8) * count / (tops[unit] or 1)) if count else 0
            parts.append(
                f'<rect x="{mid - w / 2:.1f}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}" rx="5" '
                f'fill="{COLORS.get(unit, "#3b6fd8")}"/>'
                f'<text x="{label_w + bar_w + 10}" y="{y + 22}" font-size="15" font-weight="700" fill="#1f2933">'
                f'{count:,} <tspan font-weight="400" font-size="12.5" fill="#616e7c">'
                f"{_share(count, s.get('base')) or esc(unit)}</tspan></text>"
            )
        parts.append("</g>")
        y += row_h
    svg = f'<svg viewBox="0 0 {width} {y + 4}" width="{width}" height="{y + 4}" style="max-width:100%;height:auto">'
    return svg + "".join(parts) + "</svg>"


def _share(count: int, base: int | None) -> str:
    return f"· {100 * count / base:.0f}% of {base:,}" if base else ""


def table(
    head: list[str], rows: list[list], numeric: set[int] = frozenset(), cls: str = "", total: bool = False
) -> str:
    """An HTML table (the last row a total when `total`); cells are escaped unless wrapped in Raw."""

    def cell(tag: str, i: int, v: object) -> str:
        klass = ' class="n"' if i in numeric else ""
        return f"<{tag}{klass}>{v.html if isinstance(v, Raw) else num(v)}</{tag}>"

    out = [f'<table class="{cls}">']
    if head:
        out.append("<tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr>")
    for n, row in enumerate(rows, 1):
        klass = ' class="total"' if total and n == len(rows) else ""
        out.append(f"<tr{klass}>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    return "".join(out) + "</table>"


class Raw:
    """Already-safe HTML for a table cell."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text
