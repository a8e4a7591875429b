"""Runs one benchmark variant in its own process and measures its wall time and memory.

Two memory figures per run, because each misses something the other sees:
  * `peak_rss_bytes`: `ru_maxrss` from `os.wait4` on the variant's process, i.e.
    the largest peak RSS of that process or of any descendant it waited for
    (exact, but the maximum of single processes, not their sum);
  * `peak_tree_rss_bytes`: the largest sum of `VmRSS` over the process and all
    its live descendants, sampled from /proc every `SAMPLE_SECONDS` (sees
    multi-process runs whole, but can miss a spike shorter than the interval).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

SAMPLE_SECONDS = 0.2
_PROC = Path("/proc")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What one variant process cost."""

    command: tuple[str, ...]
    returncode: int
    wall_seconds: float  # From spawn to exit, imports and model loading included.
    peak_rss_bytes: int  # Largest single-process peak (ru_maxrss of the process tree).
    peak_tree_rss_bytes: int  # Largest sampled sum over the process tree.
    log_path: str  # The process's stdout and stderr.
    cpu_seconds: float = 0.0  # User + system time of the process and its waited-for children.
    load_before: float = 0.0  # 1-minute load average when the process started ...
    load_after: float = 0.0  # ... and when it ended: > cores means others competed for CPU.


def load_average() -> float:
    """The machine's 1-minute load average."""
    return os.getloadavg()[0]


def _parent_pid(pid: int) -> int | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None  # The process exited between listing and reading.
    # Field 2 is "(comm)" and may contain spaces; the parent pid follows the last ")".
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _rss_bytes(pid: int) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass  # Exited while being read: it holds no memory any more.
    return 0


def tree_rss_bytes(root: int) -> int:
    """Sum of VmRSS over `root` and all its descendants (0 if it has exited)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            parent = _parent_pid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += _rss_bytes(pid)
        pending.extend(children.get(pid, ()))
    return total


class _TreeSampler(threading.Thread):
    """Samples the process tree's total RSS until stopped; keeps the peak."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self._root = root
        self._stop_event = threading.Event()
        self.peak = 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self._root))
            self._stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def run_measured(
    command: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Measurement:
    """Runs `command` to completion, its output going to `log_path`.

    Args:
      command: The program and its arguments.
      log_path: File that receives the process's stdout and stderr.
      env: Extra environment variables, added to this process's environment.
      cwd: Working directory of the process.

    Returns:
      The measurement; a non-zero `returncode` is reported, not raised.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    with log_path.open("wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        sampler = _TreeSampler(process.pid)
        sampler.start()
        # wait4 rather than Popen.wait: it returns this child's own rusage.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        sampler.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(
        command=tuple(command),
        returncode=process.returncode,
        wall_seconds=wall,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports kilobytes.
        peak_tree_rss_bytes=sampler.peak,
        log_path=str(log_path),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        load_before=load_before,
        load_after=load_average(),
    )
