"""The swap-readiness report: one dict, rendered as HTML, Markdown and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from fledgling.report.html import render_html
from fledgling.report.markdown import render_markdown
from fledgling.report.parity import build_report

__all__ = ["build_report", "render_html", "render_markdown", "write_report"]


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.html, report.md and report.json for one task; each file replaced whole."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {"html": render_html(report), "md": render_markdown(report),
             "json": json.dumps(report, indent=2, ensure_ascii=False, default=str)}
    paths = {}
    for ext, text in texts.items():
        path = out_dir / f"report.{ext}"
        tmp = path.with_suffix(f".{ext}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        paths[ext] = path
    return paths
