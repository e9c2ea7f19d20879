"""The canary commands: a release's candidates exported for scoring, a model's scores audited.

Both verify the output first (signature, whole tree, hashes) and open the keyring: the
export decrypts the candidates' released forms; the audit regenerates the coins from the
canary key and checks them against the manifest's commitment before using them.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from privgate.errors import DataError, PrivgateError, VerifyError
from privgate.keyring import Keyring, open_keyring
from schemas.config import RunConfig
from transforms.canaries.audit import ALPHA, audit, exposure_summary
from transforms.canaries.generate import (
    CANARY_LINE,
    ID,
    canary_key,
    coin_commitment,
    coins,
)


def _key(keyring: Keyring, dataset: str) -> bytes:
    return canary_key(keyring.data_key("token"), dataset)


def manifest_section(cfg: RunConfig, keyring: Keyring, files: list[dict], work: list[dict]) -> dict:
    """The manifest's `canaries` section: the spec, the planted count, a commitment to the
    coins (never the coins) and the encrypted candidate files.

    Raises:
        DataError: the pipeline planted another number of canaries than the coins say.
    """
    spec = cfg.canaries
    coin_bits = coins(_key(keyring, cfg.dataset), cfg.dataset, spec.count)
    planted = sum(line[CANARY_LINE]["planted"] for line in work if CANARY_LINE in line)
    exported = sum(f["rows"] for f in files)
    expected = spec.count + (spec.references if spec.kind == "secret" else 0)
    if planted != int(coin_bits.sum()) or exported != expected:
        raise DataError(
            f"canaries: {planted} planted and {exported} exported, expected "
            f"{int(coin_bits.sum())} and {expected}; output not published"
        )
    return {
        **spec.to_dict(),
        "planted": planted,
        "coin_commitment": coin_commitment(_key(keyring, cfg.dataset), cfg.dataset, coin_bits),
        "files": files,
    }


def _section(body: dict, output: str) -> dict:
    section = body.get("canaries")
    if not section:
        raise PrivgateError(f"{output}: this release has no canaries (no `canaries:` section)")
    return section


def read_canaries(output: str, keyring: str | Keyring | None = None, public_key=None) -> pa.Table:
    """Verify `output`, then every candidate (and secret reference) in its released,
    protected form with an `id` column, sorted by id; no coin in it.

    Raises:
        VerifyError: the output does not verify; KeyringError: no `pii` key; PrivgateError: no
        canaries in this release.
    """
    import pyarrow.parquet as pq

    from privgate import manifest as mf
    from privgate.parquet_crypto import decryption_properties
    from privgate.reader import verify

    kr = keyring if isinstance(keyring, Keyring) else open_keyring(keyring)
    body = verify(output, public_key=public_key, keyring=kr)
    section = _section(body, output)
    props = decryption_properties(kr.kms.bound(body["encryption"].get("kek_context", "")))
    tables = [
        pq.ParquetFile(
            pa.BufferReader(mf.read_verified(output, f)), decryption_properties=props
        ).read()
        for f in section["files"]
    ]
    table = pa.concat_tables(tables)
    return table.sort_by(ID)


def read_scores(path: str) -> dict[int, float]:
    """A CSV of `id,score` rows (a header line first) -> {id: score}.

    Raises:
        DataError: naming the file and line (never a value) for a malformed row, a repeated
        id or a score that is not a finite number.
    """
    import csv

    scores: dict[int, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != [ID, "score"]:
            raise DataError(f"{path}: line 1: the header must be `id,score`")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                i, s = int(row[0]), float(row[1])
            except (ValueError, IndexError):
                raise DataError(
                    f"{path}: line {line}: expected an integer id and a number"
                ) from None
            if not math.isfinite(s):
                raise DataError(f"{path}: line {line}: the score is not a finite number")
            if i in scores:
                raise DataError(f"{path}: line {line}: id {i} is scored twice")
            scores[i] = s
    return scores


def audit_output(
    output: str,
    scores: str | dict[int, float],
    keyring: str | Keyring | None = None,
    guess_counts: list[tuple[int, int]] | None = None,
    alpha: float = ALPHA,
    public_key: str | None = None,
) -> dict:
    """Audit a model's scores of a release's canaries (higher score = more likely a member).

    Args:
        output: the release (`privgate run`'s output directory).
        scores: a CSV path (`id,score`) or {id: score}; every candidate id must be scored
            (secret canaries: the references too, for the exposure).
        keyring: the keyring that made the release (its token key regenerates the coins).
        guess_counts: pre-registered (k_in, k_out) pairs; default the Bonferroni grid.
        alpha: the epsilon bound holds with confidence 1 - alpha.
    Returns:
        {"p_value", "epsilon_lower_bound", ...}: `AuditResult.to_dict()` plus the dataset,
        the run id and, for secret canaries, `exposure`.
    Raises:
        VerifyError: the output does not verify, or this keyring's coins do not match the
        manifest's commitment; DataError: a missing, unknown or malformed score.
    """
    from privgate.reader import verify

    kr = keyring if isinstance(keyring, Keyring) else open_keyring(keyring)
    body = verify(output, public_key=public_key, keyring=kr)
    section = _section(body, output)
    dataset, m = body["dataset"], section["count"]
    coin_bits = coins(_key(kr, dataset), dataset, m)
    if coin_commitment(_key(kr, dataset), dataset, coin_bits) != section["coin_commitment"]:
        raise VerifyError(
            f"{output}: this keyring does not regenerate the release's canary coins "
            "(the manifest's commitment differs): audit with the keyring that made it"
        )
    where = scores if isinstance(scores, str) else "scores"
    s = read_scores(scores) if isinstance(scores, str) else dict(scores)
    refs = section.get("references", 0) if section["kind"] == "secret" else 0
    unknown = sorted(i for i in s if not 0 <= i < m + refs)
    if unknown:
        raise DataError(f"{where}: id {unknown[0]} is not a canary of this release")
    missing = [i for i in range(m) if i not in s]
    if missing:
        raise DataError(f"{where}: {len(missing)} candidate(s) unscored, e.g. id {missing[0]}")
    cand = np.array([s[i] for i in range(m)])
    result = audit(cand, coin_bits, guess_counts, alpha).to_dict()
    result = {"dataset": dataset, "run_id": body["run_id"], "kind": section["kind"], **result}
    if refs:
        ref_scores = np.array([s[i] for i in range(m, m + refs) if i in s])
        result["exposure"] = (
            exposure_summary(cand, coin_bits, ref_scores) if len(ref_scores) else None
        )
    return result


def cli_export(args) -> int:
    """`privgate canaries OUTPUT [--format csv|parquet] -o FILE`."""
    import sys

    table = read_canaries(args.output, args.keyring, args.public_key)
    if args.format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, args.out)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, args.out)
    print(
        f"privgate: wrote {table.num_rows:,} canary candidates to {args.out} (NOT encrypted; "
        "no inclusion coin in it)",
        file=sys.stderr,
    )
    return 0


def _guess_counts(values: list[str] | None) -> list[tuple[int, int]] | None:
    if not values:
        return None
    counts = []
    for v in values:
        try:
            k_in, k_out = (int(x) for x in v.split(":"))
        except ValueError:
            raise PrivgateError(f"--guesses {v!r}: expected K_IN:K_OUT (two integers)") from None
        if k_in < 0 or k_out < 0 or k_in + k_out == 0:
            raise PrivgateError(f"--guesses {v!r}: counts must be >= 0 and not both 0")
        counts.append((k_in, k_out))
    return counts


def cli_audit(args) -> int:
    """`privgate audit OUTPUT --scores FILE [--guesses K_IN:K_OUT ...] [--json]`."""
    import json

    counts = _guess_counts(args.guesses)
    try:
        r = audit_output(args.output, args.scores, args.keyring, counts, public_key=args.public_key)
    except ValueError as e:  # a guess count larger than the number of candidates
        raise PrivgateError(f"--guesses: {e}") from None
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    b = r["best"]
    print(
        f"privgate: audit of {args.output} ({r['candidates']:,} {r['kind']} canaries, "
        f"{r['bonferroni_counts']} guess count(s))"
    )
    print(
        f"  epsilon lower bound: {r['epsilon_lower_bound']:.3f} at {r['confidence']:.0%} "
        f"confidence ({b['correct']:,} of {b['guesses']:,} guesses right: top {b['k_in']:,} "
        f"in, bottom {b['k_out']:,} out)"
    )
    print(f"  provenance p-value: {r['p_value']:.3g} (null: the model never saw this release)")
    if r.get("exposure"):
        e = r["exposure"]
        print(
            f"  exposure: planted mean {e['planted']['mean']:.2f} bits, left out mean "
            f"{e['left_out']['mean']:.2f} bits (max {e['max_exposure']:.2f}, "
            f"{e['references']:,} references)"
        )
    return 0
