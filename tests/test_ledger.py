"""The epsilon ledger: lifetime budgets per dataset, memoized runs charged once."""

from __future__ import annotations

import json
import os
import stat

import pytest

from privgate.errors import PrivgateError
from privgate.ledger import BudgetExceeded, EpsilonLedger, LedgerError, ledger_path_for


def test_ledger_refuses_a_run_past_the_lifetime_budget(tmp_path):
    ledger = EpsilonLedger(str(tmp_path / "epsilon-ledger.json"))
    assert ledger.spent("ds") == 0.0
    assert ledger.check("ds", 1.0, 1.5) == 1.0
    ledger.record("ds", "run-1", 1.0)
    # The same run repeated with fresh noise would spend again: refused.
    with pytest.raises(BudgetExceeded) as e:
        ledger.check("ds", 1.0, 1.5)
    assert e.value.exit_code == 3 and isinstance(e.value, PrivgateError)
    assert "ds" in str(e.value)
    assert ledger.spent("other") == 0.0  # budgets are per dataset
    entry = ledger.record("ds", "run-2", 1.0, overrun=True)
    assert entry.overrun and ledger.spent("ds") == 2.0


def test_ledger_charges_memoized_runs_once(tmp_path):
    ledger = EpsilonLedger(str(tmp_path / "l.json"))
    first = ledger.record("ds", "r1", 1.0, memoized=True, memo_id="k1:cfgA")
    repeat = ledger.record("ds", "r2", 1.0, memoized=True, memo_id="k1:cfgA")
    assert (first.charged, repeat.charged) == (1.0, 0.0)
    assert repeat.memoized
    assert ledger.check("ds", 1.0, 1.0, memoized=True, memo_id="k1:cfgA") == 1.0
    with pytest.raises(BudgetExceeded):  # another noise domain is new information
        ledger.check("ds", 1.0, 1.5, memoized=True, memo_id="k2:cfgA")
    ledger.record("ds", "r3", 0.5, memoized=False)
    assert ledger.spent("ds") == 1.5
    # Past the maximum now, yet a memoized repeat releases nothing new: allowed.
    assert ledger.check("ds", 1.0, 1.0, memoized=True, memo_id="k1:cfgA") == 1.5
    with pytest.raises(BudgetExceeded):
        ledger.check("ds", 0.1, 1.0)
    assert [e.run_id for e in ledger.entries("ds")] == ["r1", "r2", "r3"]


def test_ledger_file_is_private_json_and_sums_exactly(tmp_path):
    path = ledger_path_for(str(tmp_path / "keyring.json"))
    assert path == str(tmp_path / "epsilon-ledger.json")
    ledger = EpsilonLedger(path)
    for i in range(3):
        ledger.record("ds", f"r{i}", 0.1, time="2026-11-29T00:00:00+00:00")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.load(open(path))
    assert doc["format"] == "privgate-epsilon-ledger" and len(doc["datasets"]["ds"]) == 3
    assert ledger.check("ds", 0.2, 0.5) == pytest.approx(0.5)  # 0.1*3 + 0.2 is not > 0.5
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_ledger_unreadable_is_an_error_not_a_reset(tmp_path):
    path = tmp_path / "epsilon-ledger.json"
    path.write_text("{not json")
    ledger = EpsilonLedger(str(path))
    with pytest.raises(LedgerError):
        ledger.spent("ds")
    with pytest.raises(LedgerError):
        ledger.record("ds", "r1", 1.0)
    assert path.read_text() == "{not json"


def test_two_runs_that_both_passed_the_check_cannot_both_spend_the_budget(tmp_path):
    """check() and record() are separate steps (the run happens in between): record()
    checks again under the ledger's lock and refuses the later run, recording nothing."""
    ledger = EpsilonLedger(str(tmp_path / "l.json"))
    assert ledger.check("ds", 1.0, 1.5) == 1.0  # run A passes
    assert ledger.check("ds", 1.0, 1.5) == 1.0  # run B passes too, concurrently
    ledger.record("ds", "run-a", 1.0, lifetime_max=1.5)
    with pytest.raises(BudgetExceeded, match="from 1 to 2"):
        ledger.record("ds", "run-b", 1.0, lifetime_max=1.5)
    assert [e.run_id for e in ledger.entries("ds")] == ["run-a"]
    # an allowed overrun passes no maximum and is recorded as such
    assert ledger.record("ds", "run-c", 1.0, overrun=True).overrun


# --------------------------------------------------------------------------- a run's budget


def _budget(tmp_path, keyring_path, lifetime_max=1.0):
    from types import SimpleNamespace

    from pipelines.budget import Budget
    from schemas.config import load_config
    from tests.conftest import write_config

    schema = """\
        record_key: id
        columns:
          id: {type: string, action: tokenize}
          income: {type: float, action: ldp, epsilon: 1.0, bounds: [0, 10]}
        """
    cfg = write_config(
        tmp_path,
        input_path=tmp_path / "in.csv",
        keyring=keyring_path,
        schema=schema,
        privacy=f"{{record_epsilon_max: 1.0, lifetime_epsilon_max: {lifetime_max}, "
        f"ledger: {tmp_path / 'ledger.json'}}}",
    )
    return Budget(load_config(cfg), SimpleNamespace(keyring_id="kr-1"), False)


def _census(fingerprint, repeated=0):
    return {"rows": 3, "repeated": repeated, "fingerprint": fingerprint}


def test_a_memoized_run_is_charged_by_what_its_prf_saw(tmp_path, keyring_path):
    """Issue 13.1: before the data is read only the best case is checked (a repeat of an
    earlier release with this config); the input's fingerprint then decides: the same
    input is free, any other input costs epsilon (refused past the lifetime maximum)."""
    first = _budget(tmp_path, keyring_path)
    first.settle(_census("aa"))
    assert first.charge == 1.0 and first.memo_id == f"{first.noise_id}-aa"
    first.record("r1")
    repeat = _budget(tmp_path, keyring_path)  # at the maximum, yet it may be a repeat
    repeat.settle(_census("aa"))
    assert repeat.charge == 0.0
    repeat.record("r2")
    other_input = _budget(tmp_path, keyring_path)
    with pytest.raises(BudgetExceeded):
        other_input.settle(_census("bb"))
    ledger = EpsilonLedger(str(tmp_path / "ledger.json"))
    assert [e.charged for e in ledger.entries("test_ds")] == [1.0, 0.0]


def test_repeated_record_keys_or_an_unsettled_budget_are_refused(tmp_path, keyring_path):
    from privgate.errors import DataError

    budget = _budget(tmp_path, keyring_path)
    with pytest.raises(DataError, match=r"record_key 'id': 2 row\(s\) repeat"):
        budget.settle(_census("aa", repeated=2))
    with pytest.raises(DataError, match="census is missing"):
        budget.settle(None)
    with pytest.raises(DataError, match="not settled"):
        budget.record("r1")
    assert not (tmp_path / "ledger.json").exists()
