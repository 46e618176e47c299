"""The worker's start-up spinner only on a terminal: into a log file it wrote cursor escapes (``ESC[?25h``)."""

from __future__ import annotations

import io

import faust
import pytest

from pipeline.agents.worker import make_worker


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stdout", "spins"), [(io.StringIO(), False), (_Terminal(), True)])
def test_the_spinner_only_on_a_terminal(stdout: io.StringIO, spins: bool) -> None:
    app = faust.App("spinner-test", broker="kafka://127.0.0.1:9")  # a worker is built, never started
    worker = make_worker(app, "INFO", stdout)  # type: ignore[arg-type]  # any faust app will do
    assert (worker.spinner is not None) is spins
