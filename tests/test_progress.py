"""The progress line: counts what the stages report, drawn only when enabled."""

import io

from transforms import progress


def test_display_counts_and_draws_when_enabled():
    stream = io.StringIO()
    with progress.Display(enabled=True, interval=0.01, stream=stream) as d:
        progress.add(read=1500, written=1000, quarantined=2)
        assert "read 1,500 rows, protected 1,000, quarantined 2" in d.line()
    assert "read 1,500 rows" in stream.getvalue().splitlines()[-1]


def test_display_is_silent_when_not_a_tty():
    stream = io.StringIO()  # isatty() is False
    with progress.Display(stream=stream):
        progress.add(read=10)
    assert stream.getvalue() == ""
    assert progress.snapshot()["read"] == 10


def test_enforced_k_anonymity_shows_its_round_and_released_rows():
    # Mondrian runs after every row is protected: the line must not look stuck meanwhile
    stream = io.StringIO()
    with progress.Display(enabled=True, interval=0.01, stream=stream) as d:
        progress.add(read=4000, written=4000)
        assert "k-anonymity" not in d.line()  # a run without `anonymize:`
        progress.add(anonymized=4050)  # the rows and 50 planted canaries
        assert "k-anonymity: released 0 of 4,050" in d.line()  # no round yet
        progress.reach(anonymize_round=1)
        progress.reach(anonymize_round=3)
        progress.reach(anonymize_round=2)  # a late worker of an earlier round
        progress.add(released=1200)
        assert "k-anonymity: round 3, released 1,200 of 4,050" in d.line()
