"""The report's selective part: the verdict at a threshold chosen on val and tested on test, the
risk-coverage curve (specialist vs LLM success on the covered items, against coverage), and the
calibration of the chosen confidence score (reliability diagram, expected calibration error).

Data first (`selective_section`, a plain dict in the report), then its HTML (`render_selective`,
inline SVG like the rest of the report) and Markdown lines (`selective_markdown`).
"""

from __future__ import annotations

from html import escape
from typing import Any

from fledgling.config import Gate
from fledgling.evals.gates import evaluate_selective, has_confidence, selective_items
from fledgling.evals.runs import EvalRun
from fledgling.evals.selective import reliability, risk_coverage

CURVE_POINTS = 60  # the curve's points, at most (a threshold per distinct score otherwise)
COLOURS = {"SWAP": "#1a7f37", "NOT YET": "#9a6700", "NO": "#cf222e"}


def selective_section(cand_test: EvalRun, ref_test: EvalRun, cand_val: EvalRun | None,
                      ref_val: EvalRun | None, gates: dict[str, Gate], kind: str) -> dict[str, Any] | None:
    """None when the candidate's test run carries no confidence scores (a remote or recorded model)."""
    if not has_confidence(cand_test):
        return None
    if cand_val is None or ref_val is None or not has_confidence(cand_val):
        return {"verdict": "NOT YET", "threshold": None, "curve": [], "calibration": None,
                "text": "no val run of this candidate with confidence scores: the threshold is chosen on val "
                        f"(`fledgling eval --model {cand_test.model} --split val` and the reference's)"}
    d = evaluate_selective(cand_test, ref_test, cand_val, ref_val, gates, kind)
    items = selective_items(cand_test, ref_test, d.metric, d.score)
    curve = risk_coverage(items, d.delta)
    step = max(1, len(curve) // CURVE_POINTS)
    shown = curve[::step] + ([curve[-1]] if curve and (len(curve) - 1) % step else [])
    bins, ece = reliability([(i.confidence, i.candidate) for i in items if i.valid and i.confidence is not None])
    return {"verdict": d.verdict, "text": d.text, "metric": d.metric, "delta": d.delta,
            "min_coverage": d.min_coverage, "score": d.score, "scores_on_val": d.scores,
            "threshold": d.val.threshold if d.val is not None and d.test is not None else None,
            "val": d.val.as_dict() if d.val else None, "test": d.test.as_dict() if d.test else None,
            "unscored": d.unscored, "more_items_needed": d.more_items_needed,
            "gates": [_gate(g) for g in d.gates],
            "curve": [p.as_dict() for p in shown],
            "calibration": {"score": d.score, "ece": ece,
                            "bins": [{"low": b.low, "high": b.high, "n": b.n, "confidence": b.confidence,
                                      "accuracy": b.accuracy} for b in bins]}}


def _gate(g: Any) -> dict[str, Any]:
    return {"metric": g.metric, "rule": g.rule, "outcome": g.outcome, "reason": g.reason}


# -- HTML ----------------------------------------------------------------------------------------

def render_selective(section: dict[str, Any] | None) -> str:
    if section is None:
        return ""
    parts = ["<h2>Selective parity: the share the specialist has earned</h2>",
             f"<p><span id=selective-verdict class=pill style='background:{COLOURS[section['verdict']]}'>"
             f"{escape(section['verdict'])}</span> {escape(section['text'])}</p>"]
    if section.get("scores_on_val"):
        parts.append("<p class=muted>Threshold chosen on val, tested once on test. Confidence scores compared on "
                     "val (largest coverage at parity): " + ", ".join(
                         f"{escape(n)} {'-' if c is None else format(c, '.0%')}"
                         for n, c in section["scores_on_val"].items())
                     + f"; used: <b>{escape(section['score'])}</b>.</p>")
    if section["curve"]:
        parts.append("<div style='display:flex;gap:1rem;flex-wrap:wrap'>" + _curve_svg(section)
                     + _reliability_svg(section["calibration"]) + "</div>")
        parts.append(_table(section))
    return "".join(parts)


def _curve_svg(section: dict[str, Any]) -> str:
    """Success on the covered items (specialist and LLM, with the specialist's interval) against coverage."""
    w, h, pad = 480, 260, 40
    pts = section["curve"]

    def xy(cov: float, acc: float) -> str:
        return f"{pad + cov * w:.1f},{pad + (1 - acc) * h:.1f}"

    svg = [f"<svg id=risk-coverage role=img aria-label='risk-coverage curve' width={w + 2 * pad} "
           f"height={h + 2 * pad + 20}>",
           f"<rect x={pad} y={pad} width={w} height={h} fill='none' stroke='#d0d7de'/>"]
    band = [xy(p["coverage"], p["candidate"]["high"]) for p in pts] + \
        [xy(p["coverage"], p["candidate"]["low"]) for p in reversed(pts)]
    svg.append(f"<polygon points='{' '.join(band)}' fill='#0969da' opacity=.15><title>specialist 95% interval"
               "</title></polygon>")
    for key, colour, name in (("candidate", "#0969da", "specialist"), ("reference", "#57606a", "LLM")):
        line = " ".join(xy(p["coverage"], p[key]["mean"]) for p in pts)
        svg.append(f"<polyline points='{line}' fill=none stroke='{colour}' stroke-width=2>"
                   f"<title>{name}</title></polyline>")
        for p in pts:
            x, y = xy(p["coverage"], p[key]["mean"]).split(",")
            svg.append(f"<circle cx={x} cy={y} r=3 fill='{colour}'><title>{name}: {p[key]['mean']:.1%} at "
                       f"{p['coverage']:.0%} coverage (confidence >= {p['threshold']:.4g})</title></circle>")
    chosen = section.get("test")
    if chosen and section.get("threshold") is not None:
        x = pad + chosen["coverage"] * w
        svg.append(f"<line x1={x:.1f} x2={x:.1f} y1={pad} y2={pad + h} stroke='{COLOURS[section['verdict']]}' "
                   f"stroke-dasharray='4 3'><title>threshold {section['threshold']:.4g}: "
                   f"{chosen['coverage']:.0%} coverage</title></line>")
    for frac in (0, 0.5, 1):
        svg.append(f"<text x={pad + frac * w - 8:.0f} y={pad + h + 16}>{frac:.0%}</text>")
        svg.append(f"<text x=4 y={pad + (1 - frac) * h + 4:.0f}>{frac:.0%}</text>")
    svg.append(f"<text x={pad} y={pad + h + 34}>coverage (share the specialist answers); "
               "y: success on the covered items</text>")
    svg.append("</svg>")
    legend = ("<p><span style='color:#0969da'>■</span> specialist &nbsp; <span style='color:#57606a'>■</span> "
              "LLM on the same items</p>")
    return "<figure style='margin:0'>" + "".join(svg) + legend + "</figure>"


def _reliability_svg(cal: dict[str, Any] | None) -> str:
    if not cal or not cal["bins"]:
        return ""
    s, pad = 260, 40
    svg = [f"<svg id=reliability role=img aria-label='reliability diagram' width={s + 2 * pad} "
           f"height={s + 2 * pad + 20}>",
           f"<rect x={pad} y={pad} width={s} height={s} fill='none' stroke='#d0d7de'/>",
           f"<line x1={pad} y1={pad + s} x2={pad + s} y2={pad} stroke='#d0d7de' stroke-dasharray='3 3'/>"]
    for b in cal["bins"]:
        x = pad + b["low"] * s
        bw = (b["high"] - b["low"]) * s
        bh = b["accuracy"] * s
        svg.append(f"<rect x={x:.1f} y={pad + s - bh:.1f} width={bw - 1:.1f} height={bh:.1f} fill='#8250df' "
                   f"opacity=.7><title>stated {b['confidence']:.2f}, right {b['accuracy']:.2f}, n={b['n']}"
                   "</title></rect>")
    svg.append(f"<text x={pad} y={pad + s + 16}>stated probability exp(score)</text>")
    ece = cal["ece"]
    svg.append(f"<text x={pad} y={pad - 8}>{escape(cal['score'])}: ECE {ece:.3f}</text>" if ece is not None else "")
    svg.append("</svg>")
    return "<figure style='margin:0'>" + "".join(svg) + "<p class=muted>Share right per bin; the diagonal is " \
        "perfect calibration.</p></figure>"


def _table(section: dict[str, Any]) -> str:
    rows = []
    for name in ("val", "test"):
        p = section.get(name)
        if not p:
            continue
        lat = p["blended_latency_ms"]
        usd = p["blended_usd_per_1k"]
        rows.append(f"<tr><td>{name}</td><td class=num>{p['threshold']:.4g}</td>"
                    f"<td class=num>{p['coverage']:.1%} ({p['covered']}/{p['n']})</td>"
                    f"<td class=num>{_pct(p['candidate']['mean'])}</td>"
                    f"<td class=num>{_pct(p['reference']['mean'])}</td>"
                    f"<td class=num>[{p['low']:+.3f}, {p['high']:+.3f}]</td><td>{escape(p['decision'])}</td>"
                    f"<td class=num>{_pct(p['blended_success'])}</td>"
                    f"<td class=num>{_ms(lat.get('p50'))} / {_ms(lat.get('p95'))}</td>"
                    f"<td class=num>{'$' + format(usd, '.4f') if usd is not None else 'unpriced'}</td></tr>")
    return ("<table><tr><th>split</th><th class=num>threshold</th><th class=num>coverage</th>"
            "<th class=num>specialist (covered)</th><th class=num>LLM (same items)</th>"
            "<th class=num>paired diff 95% CI</th><th>decision</th><th class=num>blended success</th>"
            "<th class=num>blended p50 / p95 ms</th><th class=num>blended cost / 1k</th></tr>"
            + "".join(rows) + "</table>")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


# -- Markdown ------------------------------------------------------------------------------------

def selective_markdown(section: dict[str, Any] | None) -> list[str]:
    if section is None:
        return []
    out = ["## Selective parity", "", f"**{section['verdict']}**: {section['text']}", ""]
    for name in ("val", "test"):
        p = section.get(name)
        if p:
            out.append(f"- {name}: threshold {p['threshold']:.4g}, coverage {p['coverage']:.1%} "
                       f"({p['covered']}/{p['n']}), specialist {_pct(p['candidate']['mean'])} vs LLM "
                       f"{_pct(p['reference']['mean'])}, paired CI [{p['low']:+.3f}, {p['high']:+.3f}]")
    cal = section.get("calibration")
    if cal and cal.get("ece") is not None:
        out.append(f"- calibration of {cal['score']}: ECE {cal['ece']:.3f}")
    return [*out, ""]
