"""The `privgate` command line. Exit codes: 0 ok, 1 runtime failure, 2 config/usage, 3 gate.

Heavy libraries (Beam, Presidio, GX) are imported only by the commands that need them, so
`privgate verify` and `privgate read` answer quickly.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys

from pipelines.beam_logs import ValueFreeBeamLogs
from privgate.errors import PrivgateError

log = logging.getLogger("privgate")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2 (argparse does too; keep the prefix)
        self.print_usage(sys.stderr)
        self.exit(2, f"privgate: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="privgate", description="Protect personal data before training.")
    p.add_argument(
        "--log-level",
        default=os.environ.get("PRIVGATE_LOG_LEVEL", "WARNING"),
        help="logging level (records' values are never logged)",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    keys = sub.add_parser("keys", help="manage the local keyring")
    ksub = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    k_init = ksub.add_parser(
        "init", help="create a keyring (passphrase from PRIVGATE_KEYRING_PASSPHRASE)"
    )
    k_init.add_argument("--keyring", help="path (default $PRIVGATE_KEYRING)")
    k_init.add_argument(
        "--config",
        help="take keys.keyring, keys.kms and its settings "
        "(keys.pkcs11 / keys.aws-kms / keys.gcp-kms) from a "
        "run config",
    )
    k_pub = ksub.add_parser("export-public", help="write the manifest-signing public key (PEM)")
    k_pub.add_argument("--keyring")
    k_pub.add_argument("-o", "--output", help="file (default stdout)")

    k_rot = ksub.add_parser(
        "rotate",
        help="new master key versions; data keys re-wrapped, "
        "tokens unchanged, old outputs stay readable",
    )
    k_rot.add_argument("--keyring")
    k_rot.add_argument(
        "--master", default="pii,data,footer", help="comma-separated master key ids (default: all)"
    )
    k_list = ksub.add_parser("list", help="key ids, versions and creation times (no key bytes)")
    k_list.add_argument("--keyring")
    k_list.add_argument("--json", action="store_true")

    run = sub.add_parser("run", help="run the pipeline for a config; extra args go to Beam")
    run.add_argument("config")
    run.add_argument("--no-progress", action="store_true", help="never show progress")
    run.add_argument(
        "--allow-budget-overrun",
        action="store_true",
        help="run even past privacy.lifetime_epsilon_max (recorded in the manifest and the ledger)",
    )
    run.add_argument(
        "--no_wait",
        "--no-wait",
        action="store_true",
        help="DataflowRunner: submit the job and exit (run `privgate finalize` after it ends)",
    )

    fin = sub.add_parser(
        "finalize",
        help="reconcile, gate, sign and commit a staged run (manifest last); idempotent",
    )
    fin.add_argument("output", metavar="OUTPUT_OR_STAGING")
    fin.add_argument("--keyring", help="opened instead of the config's keys.keyring")

    sc = sub.add_parser("scan", help="propose a schema (types, detected PII, actions)")
    sc.add_argument("input")
    sc.add_argument("--format", choices=("csv", "jsonl", "parquet"), required=True)
    sc.add_argument("--sample", type=int, default=1000, help="values classified per column")
    sc.add_argument("--max-rows", type=int, default=100_000, help="rows read from the input")
    sc.add_argument("--delimiter", default=",")
    sc.add_argument("--encoding", default="utf-8")
    sc.add_argument("-o", "--output", help="write the schema here (default stdout)")

    ver = sub.add_parser(
        "verify", help="check an output's signature, whole tree, file hashes and verdict"
    )
    ver.add_argument("output")
    g = ver.add_mutually_exclusive_group()
    g.add_argument("--public-key", help="PEM from `privgate keys export-public` (pinned key)")
    g.add_argument(
        "--keyring",
        help="keyring whose public key to trust; it is opened (passphrase or KMS needed), "
        "which authenticates the key",
    )
    ver.add_argument("--dataset", help="refuse an output of any other dataset")
    ver.add_argument("--json", action="store_true", help="print a JSON summary")

    rd = sub.add_parser("read", help="decrypt and print protected rows (key holders)")
    rd.add_argument("output")
    rd.add_argument("--keyring")
    rd.add_argument("--public-key", help="verify with this PEM instead of the keyring's key")
    rd.add_argument("--dataset", help="refuse an output of any other dataset")
    rd.add_argument("--columns", help="comma-separated subset")
    rd.add_argument("--limit", type=int)
    rd.add_argument("--quarantine", action="store_true", help="read quarantined raw rows")
    rd.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    rd.add_argument("-o", "--out", help="file (default stdout; parquet needs a file)")

    rid = sub.add_parser("reidentify", help="decrypt values of an `encrypt` column")
    rid.add_argument("output")
    rid.add_argument("--column", required=True)
    rid.add_argument("--keyring")
    rid.add_argument("values", nargs="+", metavar="VALUE")
    _canary_parsers(sub)
    return p


def _canary_parsers(sub) -> None:
    can = sub.add_parser(
        "canaries", help="every canary candidate in its released form, with an id (key holders)"
    )
    can.add_argument("output")
    can.add_argument("--keyring")
    can.add_argument("--public-key", help="verify with this PEM instead of the keyring's key")
    can.add_argument("--format", choices=("csv", "parquet"), default="csv")
    can.add_argument("-o", "--out", required=True, help="file to write (NOT encrypted)")
    aud = sub.add_parser(
        "audit", help="epsilon lower bound and provenance p-value from a model's canary scores"
    )
    aud.add_argument("output")
    aud.add_argument("--scores", required=True, help="CSV `id,score` (higher = more likely in)")
    aud.add_argument("--keyring")
    aud.add_argument("--public-key", help="verify with this PEM instead of the keyring's key")
    aud.add_argument(
        "--guesses",
        action="append",
        metavar="K_IN:K_OUT",
        help="pre-registered guess counts (repeatable; default: a Bonferroni-corrected grid)",
    )
    aud.add_argument("--json", action="store_true")


def _keys(args) -> int:
    from privgate.keyring import (
        describe_keyring,
        init_keyring,
        open_keyring,
        resolve_keyring_path,
        rotate_keyring,
    )

    if args.keys_command == "init" and args.config:
        from pipelines.config import load_run_config

        keys = load_run_config(args.config).keys
        kr = init_keyring(args.keyring or keys.keyring, keys.kms, keys.settings_dict())
        print(
            f"created keyring {kr.keyring_id} at {kr.path} (kms {keys.kms}, mode 0600)",
            file=sys.stderr,
        )
        return 0
    path = resolve_keyring_path(args.keyring)
    if args.keys_command == "init":
        kr = init_keyring(path)
        print(f"created keyring {kr.keyring_id} at {path} (mode 0600)", file=sys.stderr)
        return 0
    if args.keys_command == "rotate":
        versions = rotate_keyring(path, tuple(m for m in args.master.split(",") if m))
        print("rotated: " + ", ".join(f"{m} -> v{v}" for m, v in versions.items()))
        return 0
    if args.keys_command == "list":
        info = describe_keyring(path)
        if args.json:
            print(json.dumps(info, indent=1))
            return 0
        print(f"keyring {info['keyring_id']} (kms {info['kms']}, created {info['created']})")
        for k, v in sorted(info.get("kms_settings", {}).items()):
            print(f"  {info['kms']} {k}: {json.dumps(v)}")
        for m, e in info["master_keys"].items():
            vers = ", ".join(f"v{v} {t}" for v, t in e["versions"].items())
            print(f"  master {m:7s} current v{e['current']}  [{vers}]")
        for n, e in info["data_protection_keys"].items():
            print(f"  data key {n:11s} wrapped by {e['wrapped_by']} v{e['master_key_version']}")
        return 0
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    # The key people will pin: taken from the opened keyring, which authenticates it (a clear
    # public key in a file someone else could edit is not trusted).
    pem = Ed25519PublicKey.from_public_bytes(open_keyring(path).public_key_bytes).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if args.output:
        with open(args.output, "wb") as f:
            f.write(pem)
    else:
        sys.stdout.write(pem.decode())
    return 0


def _run(args, beam_args) -> int:
    from pipelines.run import run

    doc = run(
        args.config,
        beam_args,
        show_progress=False if args.no_progress else None,
        allow_budget_overrun=args.allow_budget_overrun,
        no_wait=args.no_wait,
    )
    if doc.get("submitted"):
        print(f"privgate: submitted Dataflow job {doc['job_id']}, run {doc['run_id']}")
        print(f"privgate: staging  {doc['staging']}")
        print(
            f"privgate: nothing is signed yet: once the job has finished, run "
            f"`privgate finalize {doc['staging']}` (or the output path {doc['output_dir']})"
        )
        return 0
    if doc.get("dry_run"):
        print(
            f"privgate: dry run: {doc['runner']} job {doc['job_name']} built and validated "
            f"offline ({doc['transforms']} transforms); nothing was submitted and no output "
            "was written"
        )
        print(
            f"privgate: a real run would write {doc['output_dir']} (staging "
            f"{doc['staging']}, manifest last)"
        )
        for note in doc["notes"]:
            print(f"privgate: note: {note}", file=sys.stderr)
        return 0
    body = doc["manifest"]
    r = body["reconciliation"]
    print(
        f"privgate: {r['input_rows']:,} rows in, {r['output_rows']:,} protected, "
        f"{r['quarantined_rows']:,} quarantined"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in body['quarantine']['by_reason'].items())})"
            if r["quarantined_rows"]
            else ""
        )
    )
    print(f"privgate: output   {doc['output_dir']}")
    from privgate.storage import join

    print(f"privgate: manifest {join(doc['output_dir'], 'manifest.json')}")
    return 0


def _finalize(args) -> int:
    from pipelines.finalize import finalize

    keyring = None
    if args.keyring:
        from privgate.keyring import open_keyring

        keyring = open_keyring(args.keyring)
    doc = finalize(args.output, keyring=keyring)
    r = doc["manifest"]["reconciliation"]
    state = "already finalized" if doc["already_finalized"] else "finalized"
    print(
        f"privgate: {state} run {doc['manifest']['run_id']}: {r['input_rows']:,} rows in, "
        f"{r['output_rows']:,} protected, {r['quarantined_rows']:,} quarantined"
    )
    print(f"privgate: output   {doc['output_dir']}")
    return 0


def _scan(args) -> int:
    from pipelines.scan import scan

    if args.sample < 1 or args.max_rows < 1:
        raise PrivgateError("--sample and --max-rows must be positive")
    text = scan(args.input, args.format, args.sample, args.max_rows, args.delimiter, args.encoding)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"privgate: proposed schema written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _verify(args) -> int:
    from privgate.reader import verify

    body = verify(
        args.output, public_key=args.public_key, keyring=args.keyring, dataset=args.dataset
    )
    summary = {
        "output": args.output,
        "verified": True,
        "dataset": body["dataset"],
        "run_id": body["run_id"],
        "started_at": body["started_at"],
        "finished_at": body["finished_at"],
        "rows": body["output"]["rows"],
        "quarantined_rows": body["quarantine"]["rows"],
        "files": len(body["output"]["files"]) + len(body["quarantine"]["files"]),
        "gate": body.get("gate"),
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(
            f"privgate: verified {args.output}: dataset {body['dataset']}, run "
            f"{body['run_id']} (finished {body['finished_at']}), {summary['rows']:,} rows, "
            f"{summary['files']} files, signature ok"
        )
    return 0


def _read(args) -> int:
    from privgate.reader import read_table

    columns = [c for c in args.columns.split(",") if c] if args.columns else None
    table = read_table(
        args.output,
        columns=columns,
        keyring=args.keyring,
        limit=args.limit,
        quarantine=args.quarantine,
        public_key=args.public_key,
        dataset=args.dataset,
    )
    if args.format == "parquet":
        if not args.out:
            raise PrivgateError("--format parquet needs -o PATH")
        import pyarrow.parquet as pq

        pq.write_table(table, args.out)
        print(
            f"privgate: wrote {table.num_rows:,} rows to {args.out} (NOT encrypted)",
            file=sys.stderr,
        )
        return 0
    stream = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        if args.format == "csv":
            import pyarrow.csv as pacsv

            buf = io.BytesIO()
            pacsv.write_csv(table, buf)
            stream.write(buf.getvalue().decode("utf-8"))
        else:
            for row in table.to_pylist():
                stream.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    finally:
        if args.out:
            stream.close()
    return 0


def _reidentify(args) -> int:
    from privgate.keyring import open_keyring
    from privgate.reader import verify
    from transforms.protect import keyed_ops

    kr = open_keyring(args.keyring)
    body = verify(args.output, keyring=kr)
    col = next((c for c in body["columns"] if c["name"] == args.column), None)
    if col is None:
        raise PrivgateError(f"no column '{args.column}' in {args.output}")
    if col["action"] != "encrypt":
        raise PrivgateError(
            f"column '{args.column}' uses action '{col['action']}', which is not reversible"
        )
    ops = keyed_ops(kr)
    failed = 0
    for i, v in enumerate(args.values, 1):
        try:
            print(ops.decrypt(v, col.get("domain", "")))
        except ValueError:
            failed += 1
            print(
                f"privgate: value #{i} does not decrypt for column '{args.column}'", file=sys.stderr
            )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_drop_beam_import_noise)
        handler.addFilter(ValueFreeBeamLogs())
    try:
        if args.command == "keys":
            return _keys(args)
        if args.command == "run":
            return _run(args, extra)
        if args.command == "scan":
            return _scan(args)
        if args.command == "finalize":
            return _finalize(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "read":
            return _read(args)
        if args.command in ("canaries", "audit"):
            from pipelines.canaries import cli_audit, cli_export

            return cli_export(args) if args.command == "canaries" else cli_audit(args)
        return _reidentify(args)
    except Exception as e:  # noqa: BLE001 - the boundary: report without values
        err = _find_privgate_error(e)
        if err is not None:
            print(f"privgate: error: {err}", file=sys.stderr)
            return err.exit_code
        # Unexpected: exception texts from readers may quote records, so print only the type.
        print(
            f"privgate: error: unexpected {type(e).__name__}; set PRIVGATE_DEBUG=1 for a "
            "traceback (it may contain data values)",
            file=sys.stderr,
        )
        if os.environ.get("PRIVGATE_DEBUG") == "1":
            raise
        return 1


def _drop_beam_import_noise(record: logging.LogRecord) -> bool:
    # Beam's GCP IO logs this on import even when GCP is not used; it only confuses users.
    return not str(record.msg).startswith("apitools not found")


def _find_privgate_error(e: BaseException) -> PrivgateError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, PrivgateError):
            return e
        e = e.__cause__ or e.__context__
    return None


if __name__ == "__main__":
    sys.exit(main())
