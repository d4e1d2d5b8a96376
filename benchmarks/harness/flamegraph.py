"""A flame graph (SVG) of folded stacks: each box a function, its width its share of the samples, what
it called stacked above it; hover a box for its name and share. Opens in any browser."""

from __future__ import annotations

import html
import zlib
from dataclasses import dataclass, field

from benchmarks.harness import profiling

WIDTH = 1200.0
ROW = 16.0
MIN_WIDTH = 0.3
"""Boxes narrower than this (pixels) are left out."""


@dataclass(slots=True)
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(folded: str) -> _Node:
    root = _Node("all")
    for frames, count in profiling.stacks(folded):
        root.count += count
        node = root
        for frame in frames:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += count
    return root


def _depth(node: _Node) -> int:
    return 1 + max((_depth(child) for child in node.children.values()), default=0)


def _colour(frame: str) -> str:
    """Warm colours, one per package, so a package's frames read as one band."""
    seed = zlib.crc32(profiling.package(frame).encode())
    return f"rgb({205 + seed % 50},{80 + (seed >> 8) % 120},{40 + (seed >> 16) % 50})"


def render(folded: str, title: str) -> str:
    root = _tree(folded)
    if root.count == 0:
        return ""
    depth = _depth(root)
    height = (depth + 2) * ROW
    scale = WIDTH / root.count
    boxes: list[str] = []

    def draw(node: _Node, x: float, level: int) -> None:
        width = node.count * scale
        if width < MIN_WIDTH:
            return
        y = height - (level + 1) * ROW
        pct = 100.0 * node.count / root.count
        label = html.escape(node.name)
        chars = int(width / 7)
        text = html.escape(node.name[:chars] if chars < len(node.name) else node.name) if chars >= 3 else ""
        boxes.append(
            f"<g><title>{label} ({node.count} samples, {pct:.1f}%)</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{ROW - 1:.0f}" '
            f'fill="{_colour(node.name) if level else "rgb(200,200,200)"}" rx="2"/>'
            + (f'<text x="{x + 3:.1f}" y="{y + ROW - 4:.1f}">{text}</text>' if text else "")
            + "</g>"
        )
        offset = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, offset, level + 1)
            offset += child.count * scale

    draw(root, 0.0, 0)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:.0f}" height="{height:.0f}" '
        'font-family="monospace" font-size="11">'
        f'<text x="4" y="{ROW - 2:.0f}" font-size="13">{html.escape(title)}</text>' + "".join(boxes) + "</svg>\n"
    )
