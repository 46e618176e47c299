"""CPU that a benchmark's server processes used, read from /proc (Linux).

On a shared machine throughput swings with the load; the CPU a request costs the server swings much less, so the
benches print it beside their rates.
"""

from __future__ import annotations

import os
from pathlib import Path


def _own_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_s(pid: int, *, descendants: bool = False) -> float | None:
    """CPU seconds (user + system) a process has used, with its living descendants' when asked (a server's worker
    processes); None when the process is not on this machine or has gone."""
    try:
        total = _own_cpu_s(pid)
        if descendants:
            total += sum(cpu_s(child, descendants=True) or 0.0 for child in _children(pid))
    except OSError:
        return None
    return total
