"""Progress in logs: plain lines at most every tenth of the work, a rich bar only on a terminal."""

import io

from rich.console import Console

from simulacra.progress import progress


def test_a_log_gets_a_line_per_tenth_and_a_terminal_gets_none():
    log = Console(file=io.StringIO(), force_terminal=False)
    with progress("training", 1000, "steps", console=log, fields={"loss": "-"}) as bar:
        for i in range(1000):
            bar.advance(1, loss=f"{1 / (i + 1):.3f}")
    lines = log.file.getvalue().splitlines()
    assert len(lines) == 10 and lines[0].startswith("training: 100/1000 steps (10%)") and "loss 0.010" in lines[0]
    assert lines[-1].startswith("training: 1000/1000 steps (100%)") and "loss 0.001" in lines[-1]
    quiet = Console(file=io.StringIO(), force_terminal=False)
    with progress("training", 10, "steps", console=quiet, enabled=False) as bar:
        bar.advance(10)
    assert quiet.file.getvalue() == ""
    tty = Console(file=io.StringIO(), force_terminal=True)
    with progress("training", 10, "steps", console=tty) as bar:
        bar.advance(10)
    assert "training: 10/10" not in tty.file.getvalue()  # a rich bar, not log lines
