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
