"""Render sample privgate reports from synthetic demo data and screenshot them in Chromium.

Usage (from the repository root):

    .venv/bin/python benchmarks/screenshot_report.py [--rows 2000] [--out DIR] [--png-dir DIR]

What it does, the way the pipeline's gate stage will:

1. writes the synthetic demo CSV (`pipelines.demo_data`, a few broken rows included), reads
   it as strings, runs the contract check (`transforms.contract.check_batch`) and protects
   the good rows with `transforms.protect.protect_table` under throw-away random keys;
2. computes the gates with `transforms.validate`: output columns, residual PII (here a small
   regex scan over a sample of the non-tokenized string columns; it stands in for the
   Presidio detector the pipeline uses), k-anonymity over age/zip/gender, l-diversity of
   `plan`, ldp domains, reconciliation, the schema-derived input contract and a small output
   suite (Great Expectations);
3. builds the before/after histograms with `transforms.report.column_plot` and renders two
   reports with `transforms.report.render_report`: `passed/` (k = 3 over the age bands) and
   `failed/` (k = 5 over age, zip and gender: the 3-digit zip prefix is too fine for 2000
   rows);
4. if `/usr/bin/chromium` exists, screenshots each `report/index.html` (headless, no
   sandbox, no GPU, no background networking, a throw-away profile) to `<png-dir>/report-
   <variant>.png`, and checks that no secret demo value is in the HTML or JSON.

The reports only receive aggregates; the script asserts that no `full_name`, `email`,
`phone` or `ssn` value of the demo data appears in them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pcsv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
# Stand-in detector for the sample: whole-cell patterns only.
_PATTERNS = {
    "EMAIL_ADDRESS": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "US_SSN": r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
    "PHONE_NUMBER": r"\(?[0-9]{3}\)?[-. ][0-9]{3}[-. ][0-9]{4}",
}


def _timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"  {label:<28} {time.perf_counter() - start:6.3f} s")
    return out


def _read(path: str, schema) -> tuple[pa.Table, int]:
    ragged = []
    raw = pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(invalid_row_handler=lambda row: ragged.append(1) or "skip"),
        convert_options=pcsv.ConvertOptions(
            column_types={n: pa.string() for n in schema.names},
            strings_can_be_null=True,
            include_columns=list(schema.names),
        ),
    )
    return raw, len(ragged)


def _residual_pii(out: pa.Table, schema, sample: int = 1000) -> dict:
    cols = {}
    for c in schema.output_columns:
        if c.output_type != "string" or c.action in ("tokenize", "encrypt"):
            continue
        values = out.column(c.name).combine_chunks().drop_null()
        idx = np.linspace(0, max(len(values) - 1, 0), min(sample, len(values))).astype(int)
        values = values.take(pa.array(idx)) if len(values) else values
        flagged = np.zeros(len(values), dtype=bool)
        ents = {}
        for ent, pattern in _PATTERNS.items():
            hit = pc.fill_null(pc.match_substring_regex(values, pattern), False)
            hit = hit.to_numpy(zero_copy_only=False)
            if hit.any():
                ents[ent] = int(hit.sum())
            flagged |= hit
        cols[c.name] = {"sampled": len(values), "flagged": int(flagged.sum()), "entities": ents}
    return cols


def _manifest_body(
    schema, out_rows: int, input_rows: int, q_rows: int, by_reason: dict, run_id: str
) -> dict:
    from privgate.estimate import ldp_utility
    from transforms.protect import ldp_field_metadata

    cols = []
    for c in schema.columns:
        entry = dict(
            name=c.name,
            **c.to_dict(),
            key_group=c.key_group if c.action != "drop" else None,
            output_type=c.output_type,
        )
        if c.action == "ldp":
            meta = ldp_field_metadata(c)
            entry["ldp"] = {
                "mechanism": meta["privgate.ldp.mechanism"],
                **ldp_utility(meta, max(out_rows, 1)),
            }
        cols.append(entry)
    eps = schema.record_epsilon
    return {
        "dataset": "demo_customers",
        "run_id": run_id,
        "privgate_version": "sample",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "columns": cols,
        "privacy": {
            "record_epsilon": eps,
            "record_epsilon_max": 3.0,
            "charged": eps,
            "lifetime_spent_before": 0.0,
            "lifetime_spent_after": eps,
            "lifetime_epsilon_max": 10.0,
            "memoized_noise": True,
            "budget_overrun_allowed": False,
        },
        "quarantine": {"rows": q_rows, "by_reason": dict(sorted(by_reason.items()))},
        "reconciliation": {
            "input_rows": input_rows,
            "output_rows": out_rows,
            "quarantined_rows": q_rows,
            "balanced": True,
        },
    }


def _output_suite():
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx.ExpectationSuite(
        name="demo_output",
        expectations=[
            gxe.ExpectColumnValuesToBeInSet(
                column="plan", value_set=["free", "basic", "pro", "enterprise"]
            ),
            gxe.ExpectTableRowCountToBeBetween(min_value=100),
            gxe.ExpectColumnValuesToMatchRegex(column="customer_id", regex="^tk_"),
        ],
    )


def build_reports(rows: int, out_root: str) -> dict[str, str]:
    """Build the sample reports; return {variant: output dir}."""
    from pipelines.demo_data import write_demo_csv
    from schemas.model import load_schema
    from transforms import report, validate
    from transforms.actions import KeyedOps
    from transforms.contract import check_batch
    from transforms.protect import output_schema, protect_table

    schema = load_schema(os.path.join(ROOT, "schemas", "demo_customers.yaml"))
    csv_path = write_demo_csv(os.path.join(out_root, "customers.csv"), rows)
    raw, ragged = _timed("read csv", _read, csv_path, schema)
    good, quarantine = _timed("contract check", check_batch, raw, schema, csv_path, 0)
    by_reason = {"columns": ragged} if ragged else {}
    if quarantine is not None:
        for reason in quarantine.column("_reason").to_pylist():
            by_reason[reason] = by_reason.get(reason, 0) + 1
    q_rows = sum(by_reason.values())
    ops = KeyedOps(os.urandom(32), os.urandom(64), os.urandom(32), os.urandom(32))
    out = _timed("protect", protect_table, good, schema, ops, output_schema(schema))

    input_suite = _timed("input suite (GX import)", validate.input_expectations, schema)
    input_res = _timed(
        "input contract", validate.run_suite, good, input_suite, validate.CHECK_INPUT_CONTRACT
    )
    output_res = _timed(
        "output suite", validate.run_suite, out, _output_suite(), validate.CHECK_OUTPUT_EXPECTATIONS
    )
    pii = _timed("residual PII (regex)", _residual_pii, out, schema)
    plots = {}
    for c in schema.output_columns:
        p = report.column_plot(c, good.column(c.name), out.column(c.name), min_count=5)
        if p is not None:
            plots[c.name] = p
    body = _manifest_body(
        schema,
        out.num_rows,
        raw.num_rows + ragged,
        q_rows,
        by_reason,
        "sample-" + os.urandom(4).hex(),
    )

    dirs = {}
    for variant, qis, k in (("passed", ["age"], 3), ("failed", ["age", "zip", "gender"], 5)):
        start = time.perf_counter()
        checks = [
            validate.output_columns_check(out, schema),
            validate.residual_pii_check(pii, 0.0),
            validate.k_anonymity_check(validate.k_anonymity(out, qis, k)),
            validate.l_diversity_check(validate.l_diversity(out, qis, "plan", 2)),
            validate.ldp_domain_check(out, schema),
            validate.reconciliation_check(raw.num_rows + ragged, out.num_rows, q_rows),
            validate.suite_check(validate.CHECK_INPUT_CONTRACT, input_res),
            validate.suite_check(validate.CHECK_OUTPUT_EXPECTATIONS, output_res),
        ]
        verdict = validate.gate_verdict(checks)
        target = os.path.join(out_root, variant)
        report.render_report(target, verdict, body, plots)
        print(
            f"  {variant}: status {verdict['status']} (failed: {verdict['failed']}), "
            f"checks + render {time.perf_counter() - start:.3f} s"
        )
        dirs[variant] = target
    _assert_no_secrets(raw, dirs)
    return dirs


def _assert_no_secrets(raw: pa.Table, dirs: dict[str, str]) -> None:
    secrets = set()
    for col in ("full_name", "email", "phone", "ssn"):
        secrets.update(v for v in raw.column(col).to_pylist() if v and len(v) >= 6)
    for target in dirs.values():
        for name in ("index.html", "validation.json"):
            with open(os.path.join(target, "report", name), encoding="utf-8") as f:
                text = f.read()
            leaked = [s for s in secrets if s in text]
            if leaked:
                raise SystemExit(f"{name} in {target} holds {len(leaked)} demo PII values")
    print(f"  no demo PII value ({len(secrets)} checked) in any report file")


def screenshot(html_path: str, png_path: str, width: int = 1200, height: int = 2000) -> bool:
    """Screenshot a local HTML file with headless Chromium; False when it is not installed."""
    if not os.path.exists(CHROMIUM):
        return False
    profile = tempfile.mkdtemp(prefix="privgate-chromium-")
    try:
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            "--hide-scrollbars",
            "file://" + os.path.abspath(html_path),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not os.path.exists(png_path):
            tail = re.sub(r"\s+", " ", proc.stderr)[-400:]
            print(f"  chromium failed (exit {proc.returncode}): {tail}")
            return False
        return True
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument(
        "--out",
        default=None,
        help="where to write the sample outputs (default: a new temporary directory)",
    )
    ap.add_argument("--png-dir", default="/tmp", help="where screenshots go")
    ap.add_argument("--height", type=int, default=2000)
    args = ap.parse_args()
    out_root = args.out or tempfile.mkdtemp(prefix="privgate-report-")
    os.makedirs(out_root, exist_ok=True)
    print(f"building sample reports in {out_root}")
    dirs = build_reports(args.rows, out_root)
    for variant, target in dirs.items():
        html_path = os.path.join(target, "report", "index.html")
        png = os.path.join(args.png_dir, f"report-{variant}.png")
        if screenshot(html_path, png, height=args.height):
            print(f"  screenshot {variant}: {png}")
        else:
            print(
                f"  no screenshot for {variant}: {CHROMIUM} missing or failed; "
                f"open {html_path} in a browser"
            )


if __name__ == "__main__":
    main()
