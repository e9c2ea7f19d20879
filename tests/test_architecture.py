"""The house rules a reader relies on: file sizes, and a consumer API that stays light.

The import contracts themselves (layers, no cycles, no Beam in pure cores) are checked by
`lint-imports` in `make test` (configured in pyproject.toml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("pipelines", "transforms", "schemas", "privgate")
MAX_LINES = 800
ENGINES = ("apache_beam", "presidio_analyzer", "presidio_anonymizer", "spacy", "great_expectations")


def _sources():
    for pkg in PACKAGES:
        for d, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(d, f)


def test_no_source_file_is_over_800_lines():
    long = {}
    for path in _sources():
        with open(path, encoding="utf-8") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            long[os.path.relpath(path, ROOT)] = n
    assert not long, f"split these along their seams: {long}"


@pytest.fixture(scope="module")
def published(tmp_path_factory, keyring_path, demo_csv):
    """A published run of the demo schema (it has ldp columns)."""
    from pipelines.run import run
    from tests.conftest import write_config

    tmp = tmp_path_factory.mktemp("consumer")
    run(write_config(tmp, input_path=demo_csv, keyring=keyring_path), show_progress=False)
    return str(tmp / "out")


def test_the_consumer_api_imports_no_engine(published, keyring_path):
    """What a training job runs (verify, read_table, estimate) loads no Beam, Presidio,
    spaCy or Great Expectations: checked in a fresh interpreter, after real calls."""
    code = f"""
import json, sys
import privgate
from privgate.estimate import estimate_from_metadata
privgate.verify({published!r}, keyring={keyring_path!r})
table = privgate.read_table({published!r}, keyring={keyring_path!r})
ldp = [f for f in table.schema if f.metadata and f.metadata.get(b"privgate.action") == b"ldp"]
estimates = [estimate_from_metadata(table[f.name], f.metadata) for f in ldp]
print(json.dumps({{"rows": table.num_rows, "ldp": len(estimates),
    "loaded": [m for m in {ENGINES!r} if m in sys.modules]}}))
"""
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["rows"] > 0 and out["ldp"] >= 1  # the calls really ran
    assert out["loaded"] == []


@pytest.mark.parametrize(
    "module, line, contract",
    [
        # a cycle between siblings: arrow <- actions already; arrow -> actions closes it
        ("transforms/arrow.py", "from transforms import actions", "No import cycles"),
        # the policy language reaching into a stage
        ("schemas/kit.py", "from transforms import arrow", "The policy language imports"),
        # core importing the entry layer
        ("privgate/errors.py", "import pipelines.run", "Layers: entry"),
        # a training job's import pulling Beam in
        ("privgate/reader.py", "import apache_beam", "The consumer API imports no engine"),
    ],
)
def test_each_import_contract_catches_its_violation(tmp_path, module, line, contract):
    """`lint-imports` (run by `make test`) is not vacuous: one injected import breaks the
    contract that forbids it, on a copy of the tree."""
    import shutil

    for name in (*PACKAGES, "pyproject.toml"):
        src = os.path.join(ROOT, name)
        copy = shutil.copytree if os.path.isdir(src) else shutil.copy
        copy(src, tmp_path / name)
    with open(tmp_path / module, "a") as f:
        f.write(f"\n{line}  # noqa\n")
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    r = subprocess.run(
        [lint, "--no-cache"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1, r.stdout[-2000:]
    broken = [ln for ln in r.stdout.splitlines() if " BROKEN" in ln]
    assert any(ln.startswith(contract) for ln in broken), broken
