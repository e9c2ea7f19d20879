"""`make demo`: synthetic data -> local keyring -> `privgate run configs/demo.yaml` -> verify.

The demo keyring passphrase comes from PRIVGATE_KEYRING_PASSPHRASE (the Makefile sets a
demo-only value); it is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.demo_data import write_demo_csv
from privgate.errors import PrivgateError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.yaml"))
    args = ap.parse_args(argv)

    from pipelines.config import load_run_config
    from pipelines.run import run
    from privgate.keyring import init_keyring
    from privgate.reader import read_table, verify

    try:
        cfg = load_run_config(args.config)
        data = write_demo_csv(cfg.input.path, args.rows)
        print(f"demo: wrote {args.rows:,} synthetic rows (+3 broken ones) to {data}")
        if not os.path.exists(cfg.keys.keyring):
            init_keyring(cfg.keys.keyring)
            print(f"demo: created keyring {cfg.keys.keyring} (mode 0600)")
        doc = run(cfg)
        out = doc["output_dir"]
        body = verify(out, keyring=cfg.keys.keyring)
        r = body["reconciliation"]
        print(
            f"demo: {r['input_rows']:,} rows in -> {r['output_rows']:,} protected + "
            f"{r['quarantined_rows']:,} quarantined {body['quarantine']['by_reason']}"
            + (
                f"; the protected rows include {r['canary_rows']:,} canaries"
                if "canary_rows" in r
                else ""
            )
        )
        print(f"demo: dropped columns {body['dropped_columns']}")
        print("demo: first protected rows (decrypted for a key holder):")
        sample = read_table(out, keyring=cfg.keys.keyring, limit=3).to_pandas()
        print(sample.to_string(max_colwidth=40))
        _print_estimates(out, cfg, body)
        print(f"\ndemo: output    {out}")
        print(f"demo: manifest  {os.path.join(out, 'manifest.json')} (signature verified)")
        print(
            f"demo: try       .venv/bin/privgate read {os.path.relpath(out)} "
            f"--keyring {os.path.relpath(cfg.keys.keyring)} --limit 5"
        )
        if body.get("canaries"):
            print(
                f"demo: canaries  .venv/bin/privgate canaries {os.path.relpath(out)} -o "
                'candidates.csv, then score them and run `privgate audit` (README "Canaries")'
            )
        return 0
    except PrivgateError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return e.exit_code


def _print_estimates(out, cfg, body) -> None:
    """De-biased aggregates of the ldp columns: what an analyst can still learn."""
    from privgate.estimate import FrequencyEstimate, estimate_from_metadata
    from privgate.reader import read_table

    ldp_cols = [c["name"] for c in body["columns"] if c["action"] == "ldp"]
    if not ldp_cols:
        return
    table = read_table(out, keyring=cfg.keys.keyring, columns=ldp_cols)
    p = body["privacy"]
    print(
        f"\ndemo: local DP, epsilon {p['record_epsilon']:g} per record, "
        f"charged {p['charged']:g} this run (lifetime {p['lifetime_spent_after']:g} of "
        f"{p['lifetime_epsilon_max']:g}); de-biased estimates from the noisy output:"
    )
    for name in ldp_cols:
        est = estimate_from_metadata(table.column(name), table.schema.field(name).metadata)
        if isinstance(est, FrequencyEstimate):
            parts = ", ".join(
                f"{c}: {f:.3f}±{se:.3f}"
                for c, f, se in zip(est.categories, est.frequencies, est.std_errors, strict=True)
            )
            print(f"  {name:8s} frequencies {parts}")
        else:
            print(f"  {name:8s} mean {est.mean:,.1f} ± {est.std_error:,.1f}")


if __name__ == "__main__":
    sys.exit(main())
