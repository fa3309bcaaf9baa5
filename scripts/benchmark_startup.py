"""A default run end to end, as a user starts it, on a fresh store: `python scripts/benchmark_startup.py [--repeat 5]
[overrides...]`.

Each round runs, in a new empty folder (a fresh sqlite store created and migrated), once each and in rotated
order:
  mlproj            `python -m mlproj`: the command as users type it (mlproj.startup's quick start included)
  collector_as_is   the same `main()` with CPython's garbage collector left as Python sets it (what
                    `python -m mlproj` did before mlproj.startup), for the side-by-side ratio
and reports the whole process's wall seconds and CPU seconds (user + sys of the child): median [min-max, IQR].
The target of issue 17 is a median under 10 s on the project's 2-core machine. Where the time goes inside one
run: scripts/profile_run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_runner import Timed, header, run_rounds, spread

TARGET_S = 10.0
AS_IS = "import sys; sys.argv[0] = 'mlproj'; from mlproj.__main__ import main; main()"


def _timed(argv: list[str]) -> Timed:
    with tempfile.TemporaryDirectory(prefix="mlproj-startup-") as folder:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, env=_env())
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        if not (Path(folder) / "mlflow.db").exists():
            raise SystemExit("no fresh store was made in the round's folder: is MLFLOW_TRACKING_URI set?")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(samples=1, wall=wall, cpu=cpu)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # the default local store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("overrides", nargs="*", default=[], help="overrides for both commands")
    args = parser.parse_args()
    info = header()
    overrides = ["trainer.progress_bar=none", *args.overrides]
    pipelines = {
        "mlproj": lambda: _timed([sys.executable, "-m", "mlproj", *overrides]),
        "collector_as_is": lambda: _timed([sys.executable, "-c", AS_IS, *overrides]),
    }
    rounds = run_rounds(pipelines, args.repeat)
    print(f"\n  {'command':<20}{'wall s: median [min-max, IQR]':>36}{'CPU s: median [min-max, IQR]':>36}")
    result: dict = {**info, "rounds": args.repeat, "seconds": {}}
    for name in pipelines:
        wall = spread([r[name].wall for r in rounds])
        cpu = spread([r[name].cpu for r in rounds])
        result["seconds"][name] = {"wall": wall, "cpu": cpu, "each_wall": [round(r[name].wall, 2) for r in rounds]}
        print(f"  {name:<20}{_fmt(wall):>36}{_fmt(cpu):>36}")
    speedup = spread([r["collector_as_is"].wall / r["mlproj"].wall for r in rounds])
    result["speedup_wall"] = speedup
    print(f"  collector_as_is / mlproj (wall, per round): {_fmt(speedup)}")
    median = result["seconds"]["mlproj"]["wall"]["median"]
    verdict = "met" if median < TARGET_S else "NOT met"
    print(f"  target: median under {TARGET_S:.0f} s end to end: {verdict} ({median:.2f} s)")
    if args.repeat < 5:
        print(f"  ({args.repeat} round(s): fewer than 5, a headline needs --repeat 5 or more)")
    print(json.dumps(result))


def _fmt(s: dict[str, float]) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}, IQR {100 * s['iqr']:.0f}%]"


if __name__ == "__main__":
    main()
