"""Render privgate's gate reports on synthetic demo data and screenshot them in Chromium.

Usage (from the repository root):

    .venv/bin/python benchmarks/screenshot_report.py [--rows 2000] [--out DIR] [--png-dir DIR]

What it does:

1. writes the synthetic demo CSV (`pipelines.demo_data`, a few broken rows included) and a
   throw-away local keyring;
2. runs the real pipeline (`pipelines.run.run`) twice with the demo schema: `passed/` with
   the demo config's gates (k = 5 over age and gender) and `failed/` with k = 5 over age,
   zip and gender (the 3-digit zip prefix is too fine for 2000 rows: exit 3, published as
   refused, with the report saying why);
3. if `/usr/bin/chromium` exists, screenshots each `report/index.html` (headless, no
   sandbox, no GPU, no background networking, a throw-away profile) to `<png-dir>/report-
   <variant>.png`.

It asserts that no `full_name`, `email`, `phone` or `ssn` value of the demo data appears in
either report.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"


GATES = {
    "passed": "{residual_pii_max: 0.01, k_anonymity: {quasi_identifiers: [age, gender], k: 5}, "
    "l_diversity: {sensitive: smoker, l: 2}}",
    "failed": "{residual_pii_max: 0.01, k_anonymity: {quasi_identifiers: [age, zip, gender], "
    "k: 5}, l_diversity: {sensitive: smoker, l: 2}}",
}


def build_reports(rows: int, out_root: str) -> dict[str, str]:
    """Run the pipeline for each variant; return {variant: output dir}."""
    from pipelines.demo_data import write_demo_csv
    from pipelines.run import run
    from privgate.errors import GateError
    from privgate.keyring import PASSPHRASE_ENV, init_keyring

    os.environ.setdefault(PASSPHRASE_ENV, "screenshot-only-passphrase")
    csv_path = write_demo_csv(os.path.join(out_root, "customers.csv"), rows)
    keyring = os.path.join(out_root, "keyring.json")
    if not os.path.exists(keyring):
        init_keyring(keyring)
    dirs = {}
    for variant, gates in GATES.items():
        cfg = os.path.join(out_root, f"{variant}.yaml")
        with open(cfg, "w") as f:
            f.write(
                f"dataset: demo_{variant}\n"
                f"input: {{path: {csv_path}, format: csv}}\n"
                f"schema: {os.path.join(ROOT, 'schemas', 'demo_customers.yaml')}\n"
                f"output: {{path: {os.path.join(out_root, variant)}}}\n"
                f"keys: {{kms: local, keyring: {keyring}}}\n"
                f"privacy: {{record_epsilon_max: 3.0, lifetime_epsilon_max: 1000}}\n"
                f"gates: {gates}\n"
            )
        start = time.perf_counter()
        try:
            status = run(cfg, show_progress=False)["manifest"]["gate"]["status"]
        except GateError:
            status = "failed"
        print(f"  {variant}: gate {status}, run {time.perf_counter() - start:.1f} s")
        dirs[variant] = os.path.join(out_root, variant)
    _assert_no_secrets(csv_path, dirs)
    return dirs


def _assert_no_secrets(csv_path: str, dirs: dict[str, str]) -> None:
    import csv

    secrets = set()
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for col in ("full_name", "email", "phone", "ssn"):
                v = row.get(col)
                if v and len(v) >= 6:
                    secrets.add(v)
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
