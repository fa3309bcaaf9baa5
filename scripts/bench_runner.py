"""The timing loop every benchmark script shares: pinned threads, interleaved rounds, wall and CPU time, spread.

A pipeline is a function returning a `Timed` (samples processed in its timed window, and the window's wall and
process CPU seconds; warm-up is the pipeline's to exclude, see `Stopwatch`). `run_rounds` runs every pipeline
once per round, the order rotated each round, so a busy neighbour slows all of them alike and none is always
first; `summarise` reports, per pipeline and per ratio, the median of the rounds and their spread (min-max and
relative IQR), and flags a spread too wide to trust. CPU time (`time.process_time`, all of this process's
threads, plus any children's) is much less disturbed by other processes than wall time on a shared machine:
both are printed, side by side.

    from bench_runner import Stopwatch, Timed, pin_threads, run_rounds, summarise, header
"""

from __future__ import annotations

import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TOO_WIDE = 0.15  # (max - min) / median of a ratio's rounds above this: the median is not to be trusted alone


@dataclass
class Timed:
    samples: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.samples / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        return self.samples / self.cpu if self.cpu > 0 else 0.0


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Stopwatch:
    """Wall and CPU seconds summed over start/stop windows (the timed epochs; a warm-up is never started).
    `sync` is called at both ends (torch.cuda.synchronize on a GPU: the work queued must be counted)."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.wall = self.cpu = 0.0
        self._began: tuple[float, float] | None = None
        self.sync = sync or (lambda: None)

    def start(self) -> None:
        self.sync()
        self._began = (time.perf_counter(), _cpu())

    def stop(self) -> None:
        if self._began is None:
            return
        self.sync()
        wall, cpu = self._began
        self.wall += time.perf_counter() - wall
        self.cpu += _cpu() - cpu
        self._began = None

    def result(self, samples: int) -> Timed:
        return Timed(samples, self.wall, self.cpu)


def pin_threads(threads: int | None) -> int:
    """torch's intra-op threads (and OMP/MKL's for anything started later); returns the count in use."""
    import torch

    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def run_rounds(pipelines: dict[str, Callable[[], Timed]], rounds: int) -> list[dict[str, Timed]]:
    """Every pipeline once per round, the order rotated by one each round."""
    names = list(pipelines)
    out = []
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        done = {name: pipelines[name]() for name in order}
        out.append({name: done[name] for name in names})
    return out


def spread(values: list[float]) -> dict[str, float]:
    """median, min, max, and the relative spreads (max-min)/median and IQR/median."""
    med = statistics.median(values)
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [med, med, med]
    rel = (max(values) - min(values)) / med if med else 0.0
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "range": rel,
        "iqr": (q[2] - q[0]) / med if med else 0.0,
    }


def _fmt(s: dict[str, float], digits: str = ".2f") -> str:
    return f"{s['median']:{digits}} [{s['min']:{digits}}-{s['max']:{digits}}, IQR {100 * s['iqr']:.0f}%]"


def summarise(rounds: list[dict[str, Timed]], ratios: list[tuple[str, str]], unit: str = "samples/s") -> dict:
    """Print per pipeline (wall and CPU rates) and per ratio (wall and CPU) the median [min-max, IQR] of the
    rounds; a ratio whose rounds spread more than TOO_WIDE is flagged. Returns the same as a JSON-able dict."""
    names = list(rounds[0])
    result: dict = {"rounds": len(rounds), "pipelines": {}, "ratios": {}, "too_wide": []}
    print(f"  {'pipeline':<30}{unit + ' (wall)':>34}{unit + ' per CPU second':>40}")
    for name in names:
        wall = spread([r[name].rate for r in rounds])
        cpu = spread([r[name].cpu_rate for r in rounds])
        result["pipelines"][name] = {"wall": wall, "cpu": cpu}
        print(f"  {name:<30}{_fmt(wall, ',.0f'):>34}{_fmt(cpu, ',.0f'):>40}")
    for a, b in ratios:
        wall = spread([r[a].rate / r[b].rate for r in rounds])
        cpu = spread([r[a].cpu_rate / r[b].cpu_rate for r in rounds])
        key = f"{a}_vs_{b}"
        result["ratios"][key] = {"wall": wall, "cpu": cpu}
        wide = [k for k, s in (("wall", wall), ("cpu", cpu)) if len(rounds) > 1 and s["range"] > TOO_WIDE]
        note = ""
        if wide:
            result["too_wide"].append(key)
            note = (
                f"  <- {'/'.join(wide)} rounds spread >{TOO_WIDE:.0%}: quote the range, or rerun on a quieter machine"
            )
        print(f"  {key:<44} wall {_fmt(wall)}   cpu {_fmt(cpu)}{note}")
    if len(rounds) < 5:
        print(f"  ({len(rounds)} round(s): fewer than 5, a headline needs --repeat 5 or more)")
    return result


def header() -> dict[str, str]:
    """What a recorded result needs beside it: commit, machine, load, the exact command."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    import torch

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    info = {
        "commit": commit + ("+uncommitted" if dirty else ""),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "torch": f"{torch.__version__}, {torch.get_num_threads()} thread(s)",
        "load": load,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for k, v in info.items():
        print(f"# {k}: {v}")
    return info
