"""The report page, written with its `validation.json` into `report/` of the output directory.

The HTML page is self-contained: inline CSS, bar charts as inline SVG
(`transforms.report.charts`: no plotting library, so rendering takes milliseconds), no
script, no CDN, no link out; it opens from a file on a machine without network. It starts
with the verdict, then the columns and their policy, the privacy figures, the PII findings,
k-anonymity, the before/after distributions, the quarantine and the expectation suites.
It only receives aggregates (`transforms.report.aggregate`); every text goes through
`html.escape`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.columns import ACTIONS
from transforms.gates import checks as gate_checks
from transforms.gates.checks import fmt_int as _int
from transforms.gates.checks import fmt_pct as _pct
from transforms.report.aggregate import validation_document
from transforms.report.charts import _before_after_svg, _e, _k_histogram_svg

REPORT_DIR = "report"
INDEX = "index.html"
VALIDATION_JSON = "validation.json"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;color:#1f2328;background:#f6f8fa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;
 border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.meta{color:#59636e;font-size:13px}
.verdict{border-radius:10px;padding:22px 26px;margin:18px 0;color:#fff}
.verdict .big{font-size:40px;font-weight:800;letter-spacing:.04em}
.verdict.passed{background:#1a7f37}.verdict.failed{background:#cf222e}
.verdict code{background:rgba(255,255,255,.22);color:#fff}
.verdict ul{margin:8px 0 0 18px;padding:0;font-size:15px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:700}.bad{color:#cf222e;font-weight:700}
.warn{color:#9a6700;font-weight:700}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;margin:8px 0}
.chart{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:6px;margin:8px 0}
.chart svg{width:100%;max-width:980px;height:auto;display:block}
.note{color:#59636e;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;font-size:13px}
code{font-size:12px;background:#eef1f4;padding:1px 4px;border-radius:4px}
"""


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    """An HTML table; cells are escaped unless given as `_Raw`."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            text = cell.html if isinstance(cell, _Raw) else _e(cell)
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw:
    """Markup built here from escaped parts (a status badge)."""

    def __init__(self, markup: str):
        self.html = markup


def _badge(passed: bool | None, text: str | None = None) -> _Raw:
    if passed is None:
        return _Raw(f'<span class="warn">{_e(text or "warning")}</span>')
    cls = "ok" if passed else "bad"
    return _Raw(f'<span class="{cls}">{_e(text or ("passed" if passed else "FAILED"))}</span>')


def _find(validation: Mapping, name: str) -> Mapping | None:
    for c in validation.get("checks") or []:
        if c.get("name") == name:
            return c
    return None


def _column_notes(col: Mapping) -> str:
    """The action's one-line note on its options (declared in `schemas.columns.ACTIONS`)."""
    action = ACTIONS.get(col.get("action"))
    return "" if action is None else action.describe(col)


def _section_columns(body: Mapping) -> str:
    rows = []
    for c in body.get("columns") or []:
        rows.append(
            [
                c.get("name"),
                c.get("type"),
                c.get("action"),
                c.get("pii") or "–",
                c.get("key_group") or "–",
                c.get("output_type") or "dropped",
                _column_notes(c),
            ]
        )
    if not rows:
        return "<p class='note'>No column list in the manifest.</p>"
    return _table(
        ["column", "type", "action", "PII entity", "key group", "output type", "parameters"], rows
    )


def _section_privacy(body: Mapping) -> str:
    p = body.get("privacy")
    if not p:
        return "<p>No local differential privacy in this run (no ldp columns).</p>"
    rows = [
        [
            "epsilon per record (sum over ldp columns)",
            p.get("record_epsilon"),
            p.get("record_epsilon_max"),
        ],
        [
            "lifetime epsilon spent (after this run)",
            p.get("lifetime_spent_after"),
            p.get("lifetime_epsilon_max"),
        ],
        ["charged by this run", p.get("charged"), "–"],
    ]
    notes = []
    if p.get("memoized_noise"):
        notes.append(
            "Noise is memoized per record: re-running on the same records costs no extra epsilon."
        )
    if p.get("budget_overrun_allowed"):
        notes.append("The lifetime budget was allowed to overrun for this run.")
    return _table(["figure", "value", "limit"], rows, numeric=(1, 2)) + "".join(
        f"<p class='note'>{_e(n)}</p>" for n in notes
    )


def _section_pii(validation: Mapping) -> str:
    kind = gate_checks.ResidualPiiCheck
    c = _find(validation, kind.name)
    if c is None:
        return "<p class='note'>Residual PII was not checked in this run.</p>"
    d = c.get("details") or {}
    by_col = d.get("by_column") or {}
    entities = sorted(
        {e for v in by_col.values() for e in ((v.get(kind.DETECTOR) or {}).get("entities") or {})}
    )
    rows = []
    for col in sorted(by_col):
        v = by_col[col]
        own, det = v.get(kind.OWN_ROW) or {}, v.get(kind.DETECTOR) or {}
        ents = det.get("entities") or {}
        sources = ", ".join(f"{k} ({n:,})" for k, n in (own.get("by_source") or {}).items() if n)
        rows.append(
            [
                col,
                _badge(bool(v.get("passed"))),
                _pct(v.get("rate")),
                _int(own.get("checked")),
                _int(own.get("leaking")),
                sources or "–",
                _int(det.get("sampled")),
                _int(det.get("flagged")),
                "–" if det.get("score_threshold") is None else f"{det['score_threshold']:g}",
                *[_int(ents.get(e, 0)) for e in entities],
            ]
        )
    head = f"<p>{_badge(c['passed']).html} {_e(gate_checks.summary(c))}</p>"
    if not rows:
        return head + "<p class='note'>No string column needed checking.</p>"
    note = (
        "<p class='note'>Two independent kinds of evidence per output text column: "
        "<b>own-row</b>, the row's own raw values of protected columns (names also by their "
        "words) found in its output, counted over every row; <b>detector</b>, PII found on a "
        "sample at a lower score threshold than the scrubber's. A column's rate is the larger "
        "of the two; each column is judged on its own. Counts only.</p>"
    )
    return (
        head
        + _table(
            [
                "column",
                "status",
                "rate",
                "rows checked (own-row)",
                "rows with own raw values",
                "found from",
                "sampled values (detector)",
                "values with PII",
                "score threshold",
                *entities,
            ],
            rows,
            numeric=(2, 3, 4, 6, 7, 8, *range(9, 9 + len(entities))),
        )
        + note
    )


def _section_k(validation: Mapping) -> str:
    out = []
    c = _find(validation, gate_checks.KAnonymityCheck.name)
    if c is None:
        out.append("<p class='note'>k-anonymity was not configured (gates.k_anonymity).</p>")
    else:
        d = c.get("details") or {}
        out.append(
            f"<p>{_badge(c['passed']).html} {_e(gate_checks.summary(c))}. "
            f"Quasi-identifiers: {_e(', '.join(d.get('quasi_identifiers') or []))}.</p>"
        )
        if d.get("histogram") and d.get("records"):
            out.append(f"<div class='chart'>{_k_histogram_svg(d['histogram'], int(d['k']))}</div>")
            out.append(
                _table(
                    ["class size", "classes", "records"],
                    [[h["size"], _int(h["classes"]), _int(h["records"])] for h in d["histogram"]],
                    numeric=(1, 2),
                )
            )
    ld = _find(validation, gate_checks.LDiversityCheck.name)
    if ld is not None:
        out.append("<h3>l-diversity</h3>")
        out.append(f"<p>{_badge(ld['passed']).html} {_e(gate_checks.summary(ld))}.</p>")
    return "".join(out)


def _section_anonymize(body: Mapping) -> str:
    cert = body.get("anonymize")
    if not cert:
        return "<p class='note'>Not enforced (no <code>anonymize:</code> section).</p>"
    cfg = cert.get("config") or {}
    ldiv = cfg.get("l_diversity")
    figures = [
        ["k asked / reached (smallest class)", f"{cert['k']} / {_int(cert['k_reached'])}"],
        ["equivalence classes", _int(cert["classes"])],
        ["records released / suppressed", f"{_int(cert['released'])} / {_int(cert['suppressed'])}"],
        [
            "suppressed share (max)",
            f"{cert['suppressed_share']:.2%} ({cert['max_suppression']:.2%})",
        ],
        ["information loss, GCP (all quasi-identifiers)", f"{cert['gcp']:.2%}"],
        *[[f"NCP {q}", f"{v:.2%}"] for q, v in cert["ncp"].items()],
        ["discernibility metric", _int(cert["discernibility"])],
    ]
    if ldiv:
        figures.append(
            [f"l asked / reached ({ldiv['sensitive']})", f"{cert['l']} / {_int(cert['l_reached'])}"]
        )
    out = [
        f"<p>Multidimensional Mondrian (strict partitioning) over "
        f"{_e(', '.join(cfg.get('quasi_identifiers') or []))}; numeric quasi-identifiers "
        f"released as {_e(cfg.get('numeric_output', ''))}. Suppressed records keep their other "
        "columns with every quasi-identifier empty. k-anonymity is not differential privacy: "
        "it does not protect against linkage with data the attacker holds beyond the "
        "quasi-identifiers, nor against a class sharing one sensitive value without "
        "l-diversity.</p>",
        _table(["figure", "value"], figures, numeric=(1,)),
    ]
    if cert.get("histogram") and cert.get("released"):
        out.append(
            f"<div class='chart'>{_k_histogram_svg(cert['histogram'], int(cert['k']))}</div>"
        )
    return "".join(out)


def _section_ldp(validation: Mapping) -> str:
    c = _find(validation, gate_checks.LdpDomainCheck.name)
    if c is None:
        return ""
    cols = (c.get("details") or {}).get("columns") or {}
    if not cols:
        return "<p class='note'>No ldp columns.</p>"
    rows = [
        [
            col,
            v.get("domain"),
            _int(v.get("checked")),
            _int(v.get("outside")),
            _badge(bool(v.get("metadata_ok")), "yes" if v.get("metadata_ok") else "NO"),
            _badge(bool(v.get("present")) and v.get("outside") == 0 and bool(v.get("metadata_ok"))),
        ]
        for col, v in sorted(cols.items())
    ]
    return _table(
        ["column", "domain", "values checked", "outside", "metadata matches", "result"],
        rows,
        numeric=(2, 3),
    )


def _section_plots(plots: Mapping) -> str:
    if not plots:
        return "<p class='note'>No ldp or generalized columns to plot.</p>"
    out = [
        "<p class='note'>Counts per public bin (declared bounds and categories, or "
        "released generalized classes held by several records, with top- and bottom-coded "
        "&lt; and ≥ bins beyond them); no value from the data is shown.</p>"
    ]
    for col in sorted(plots):
        plot = plots[col]
        suppressed = any(v is None for v in list(plot["before"]) + list(plot["after"]))
        out.append(f"<h3>{_e(col)}</h3><div class='chart'>{_before_after_svg(col, plot)}</div>")
        notes = [plot["note"]] if plot.get("note") else []
        if suppressed:
            notes.append("Bins marked supp. hold too few records to show.")
        out.extend(f"<p class='note'>{_e(n)}</p>" for n in notes)
    return "".join(out)


def _section_quarantine(body: Mapping, validation: Mapping) -> str:
    q = body.get("quarantine") or {}
    by_reason = q.get("by_reason") or {}
    out = []
    rec = body.get("reconciliation")
    if rec:  # a run whose rows do not reconcile is never published, so this always holds
        out.append(
            f"<p>{_int(rec.get('input_rows'))} input rows = {_int(rec.get('output_rows'))} "
            f"output + {_int(rec.get('quarantined_rows'))} quarantined.</p>"
        )
    if by_reason:
        out.append(
            _table(
                ["reason", "rows"],
                [[r, _int(n)] for r, n in sorted(by_reason.items())],
                numeric=(1,),
            )
        )
        out.append(
            "<p class='note'>Reason codes: <code>type:col</code> value not of the "
            "declared type, <code>null:col</code> missing in a non-nullable column, "
            "<code>domain:col</code> outside declared categories, <code>columns</code> "
            "ragged row, <code>encoding:col</code>, <code>size:col</code>, "
            "<code>json</code>.</p>"
        )
    else:
        out.append("<p>No row was quarantined.</p>")
    return "".join(out)


def _section_suites(validation: Mapping) -> str:
    out = []
    for c in validation.get("checks") or []:
        d = c.get("details") or {}
        if not gate_checks.is_suite_result(d):
            continue
        out.append(
            f"<h3>{_e(c['name'])} <span class='meta'>(suite {_e(d.get('suite'))})"
            f"</span></h3><p>{_badge(c['passed']).html} {_e(gate_checks.summary(c))}</p>"
        )
        failed, passed = [], []
        for e in d["expectations"]:
            ok = bool(e.get("success"))
            status = (
                _badge(True)
                if ok
                else (_badge(None, "warning") if e.get("severity") != "critical" else _badge(False))
            )
            unexpected = e.get("unexpected_count")
            (passed if ok else failed).append(
                [
                    e.get("type"),
                    e.get("column") or "–",
                    e.get("severity"),
                    status,
                    _int(e.get("element_count")),
                    "–" if unexpected is None else _int(unexpected),
                    "error" if e.get("raised_exception") else "",
                ]
            )
        headers = ["expectation", "column", "severity", "result", "rows", "unexpected", ""]
        if failed:
            out.append(_table(headers, failed, numeric=(4, 5)))
        if passed:
            out.append(
                f"<details><summary>{len(passed)} expectations passed</summary>"
                f"{_table(headers, passed, numeric=(4, 5))}</details>"
            )
    if not out:
        return "<p class='note'>No expectation suite was run.</p>"
    out.append(
        "<p class='note'>Results hold counts only: failing values are never copied "
        "into this report.</p>"
    )
    return "".join(out)


def build_html(validation: Mapping, manifest_body: Mapping, plots: Mapping) -> str:
    """The report page as a string (see `render_report`).

    Args:
        validation: `gate_verdict(...)` output.
        manifest_body: the manifest body (`pipelines.reconcile.build_manifest`).
        plots: {column: {"bins", "before", "after"}} of aggregated counts.
    Returns:
        A complete, self-contained HTML document.
    """
    status = validation.get("status", "failed")
    passed = status == "passed"
    failed = validation.get("failed") or []
    dataset = manifest_body.get("dataset", "")
    title = f"privgate report: {dataset}" if dataset else "privgate report"
    verdict = [
        f"<section class='verdict {'passed' if passed else 'failed'}'>",
        f"<div class='big'>{'GATE PASSED' if passed else 'GATE FAILED'}</div>",
    ]
    if passed:
        verdict.append("<div>Every gate holds: this output may be used for training.</div>")
    else:
        verdict.append(
            "<div>This output must not be used: <code>privgate verify</code> "
            "refuses it. Failed checks:</div><ul>"
        )
        for name in failed:
            c = _find(validation, name) or {"name": name, "passed": False}
            verdict.append(f"<li><b>{_e(name)}</b>: {_e(gate_checks.summary(c))}</li>")
        verdict.append("</ul>")
    verdict.append("</section>")

    checks = [
        [c["name"], _badge(c["passed"]), gate_checks.summary(c)]
        for c in validation.get("checks") or []
    ]
    meta = " · ".join(
        _e(x)
        for x in (
            f"run {manifest_body.get('run_id', '–')}",
            f"finished {manifest_body.get('finished_at', '–')}",
            f"privgate {manifest_body.get('privgate_version', '–')}",
        )
        if x
    )
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1><div class='meta'>{meta}</div>",
        *verdict,
        "<h2>Gate checks</h2>",
        _table(["check", "result", "summary"], checks),
        "<h2>Columns and policy</h2>",
        _section_columns(manifest_body),
        "<h2>Privacy budget (local differential privacy)</h2>",
        _section_privacy(manifest_body),
        "<h2>Residual PII in the output</h2>",
        _section_pii(validation),
        "<h2>k-anonymity</h2>",
        _section_k(validation),
        "<h2>Enforced k-anonymity (certificate)</h2>",
        _section_anonymize(manifest_body),
        "<h2>ldp domains</h2>",
        _section_ldp(validation) or "<p class='note'>Not checked.</p>",
        "<h2>Distributions before and after</h2>",
        _section_plots(plots),
        "<h2>Quarantine and reconciliation</h2>",
        _section_quarantine(manifest_body, validation),
        "<h2>Expectation suites</h2>",
        _section_suites(validation),
        "<p class='note'>This report holds aggregates only (counts, shares, configuration); "
        "it contains no value of any record. Machine-readable form: "
        f"<code>{_e(VALIDATION_JSON)}</code>.</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def render_report(
    out_dir: str, validation: Mapping, manifest_body: Mapping, plots: Mapping
) -> None:
    """Write `report/index.html` and `report/validation.json` into an output directory.

    Args:
        out_dir: the (staging) output directory; `report/` is created in it.
        validation: `transforms.gates.checks.gate_verdict(...)` output.
        manifest_body: the manifest body (`columns`, `privacy`, `quarantine.by_reason`,
            `dataset`, `run_id`, ...).
        plots: {column: {"bins": [labels], "before": [counts], "after": [counts],
            optional "note"}} built with `column_plot` / `histogram_counts` (aggregates only;
            a count of None is a suppressed small cell).
    Raises:
        TypeError: validation details that are not plain JSON.
        ValueError: a plot whose before/after lengths differ from its bins.
        OSError: the directory cannot be written.
    """
    for col, plot in plots.items():
        n = len(plot["bins"])
        if len(plot["before"]) != n or len(plot["after"]) != n:
            raise ValueError(f"plot '{col}': before/after must have one count per bin")
    doc = validation_document(validation, manifest_body)
    page = build_html(validation, manifest_body, plots)
    target = os.path.join(out_dir, REPORT_DIR)
    os.makedirs(target, exist_ok=True)
    for name, text in (
        (VALIDATION_JSON, json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"),
        (INDEX, page),
    ):
        tmp = os.path.join(target, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(target, name))
