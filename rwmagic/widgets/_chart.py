"""Small SVG line charts (no plotting dependency): one panel per series, side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rwmagic.widgets._common import esc

__all__ = ["Series", "chart"]

W, H = 250, 110  # one panel
PAD_L, PAD_R, PAD_T, PAD_B = 46, 8, 18, 20


@dataclass
class Series:
    """One panel: a title, (x, y) points, a colour and how y values are written."""

    title: str
    points: Sequence[tuple[float, float]]
    color: str
    fmt: Callable[[float], str]


def _panel(s: Series, x0: int) -> str:
    out = [f'<g transform="translate({x0},0)" class="rw-panel">',
           f'<text x="{PAD_L}" y="12" font-size="11" font-weight="bold" '
           f'fill="currentColor">{esc(s.title)}</text>',
           f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" '
           f'height="{H - PAD_T - PAD_B}" fill="none" stroke="currentColor" '
           'stroke-opacity="0.25"/>']
    pts = list(s.points)
    if not pts:
        out.append(f'<text x="{W // 2}" y="{H // 2 + 4}" font-size="10" text-anchor="middle" '
                   'fill="currentColor" opacity="0.6">no data yet</text></g>')
        return "".join(out)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x_lo, x_hi = min(xs), max(xs)
    y_hi = max(max(ys), 1e-9)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def sx(x: float) -> float:
        return PAD_L + (pw * (x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else pw / 2)

    def sy(y: float) -> float:
        return PAD_T + ph - ph * y / y_hi

    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
    out.append(f'<polyline points="{line}" fill="none" stroke="{s.color}" '
               'stroke-width="1.5"/>')
    lx, ly = pts[-1]
    out.append(f'<circle cx="{sx(lx):.1f}" cy="{sy(ly):.1f}" r="2.5" fill="{s.color}"/>')
    for y, label in ((PAD_T + 4, s.fmt(y_hi)), (PAD_T + ph, s.fmt(0))):
        out.append(f'<text x="{PAD_L - 3}" y="{y}" font-size="9" text-anchor="end" '
                   f'fill="currentColor" opacity="0.7">{esc(label)}</text>')
    for x, anchor in ((x_lo, "start"), (x_hi, "end")):
        out.append(f'<text x="{sx(x):.1f}" y="{H - 6}" font-size="9" text-anchor="{anchor}" '
                   f'fill="currentColor" opacity="0.7">epoch {int(x)}</text>')
    out.append(f'<text x="{W - PAD_R - 2}" y="{PAD_T + 11}" font-size="10" text-anchor="end" '
               f'fill="{s.color}">last {esc(s.fmt(ly))}</text></g>')
    return "".join(out)


def chart(series: Sequence[Series]) -> str:
    """An SVG with one panel per series, left to right."""
    width = W * len(series)
    panels = "".join(_panel(s, i * W) for i, s in enumerate(series))
    return (f'<svg class="rw-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{H}" viewBox="0 0 {width} {H}" '
            f'style="font-family:sans-serif;overflow:visible">{panels}</svg>')
