"""Soak: many short runs in a loop against one store, with faults; then count what was left behind.

Each run is `python -m mlproj` as users type it, in one working directory and one sqlite store, cycling
through: a normal run, a diverging loss (FAILED), a crash in the model (FAILED), a SIGTERM mid-training
(KILLED), and `resume=auto` after it (the same run, FINISHED). Afterwards: runs left RUNNING (must be 0), runs
by status, and orphan files: anything outside the store (mlflow.db*, mlruns/) and the run directories
(outputs/), plus `mlproj-*` temporary folders left in the system temp dir.

    python scripts/soak.py                 # 50 runs
    python scripts/soak.py --runs 5        # one of each
The last line is one JSON object with the counts.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE = ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=plain", "tracking.log_plots=false"]
QUICK = ["debug=quick", "model=linear", *BASE]
PACED = [  # ~0.5 s an epoch, so a signal lands mid-training
    "data=synthetic",
    "data.rows=4000",
    "model=linear",
    "model._target_=tests.models.Slow",
    "+model.delay=0.01",
    "trainer.max_epochs=6",
    "trainer.early_stopping=false",
    *BASE,
]
SCENARIOS = {  # name -> (overrides, expected exit code, expected status of the run it makes/ends)
    "normal": (QUICK, 0, "FINISHED"),
    "diverging": ([*QUICK, "optimizer=sgd", "optimizer.lr=1e30"], 1, "FAILED"),
    "crash": ([*QUICK, "model._target_=tests.models.FailsAtStep"], 1, "FAILED"),
    "sigterm": (PACED, 143, "KILLED"),
    "resume": ([*PACED, "resume=auto"], 0, "FINISHED"),
}
ALLOWED = ("mlflow.db", "mlruns", "outputs")


def one(name: str, store: str, cwd: Path, env: dict[str, str]) -> tuple[int, float]:
    args, _, _ = SCENARIOS[name]
    started = time.monotonic()
    cmd = [sys.executable, "-m", "mlproj", *args, f"tracking.uri={store}"]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in proc.stdout:
        output.append(line)
        if name == "sigterm" and line.startswith("epoch 2/"):
            proc.send_signal(signal.SIGTERM)  # a preemption, two epochs in
    proc.wait(600)
    if proc.returncode != SCENARIOS[name][1]:
        print("".join(output[-40:]), file=sys.stderr)
    return proc.returncode, time.monotonic() - started


def orphans(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if not p.relative_to(root).parts[0].startswith(ALLOWED)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--workdir", type=Path, help="default: a fresh temporary folder")
    args = p.parse_args(argv)
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="soak-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{root / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])  # tests.models
    temp_before = set(Path(tempfile.gettempdir()).glob("mlproj-*"))
    names = list(SCENARIOS)
    wrong_exit, seconds = [], []
    started = time.monotonic()
    for i in range(args.runs):
        name = names[i % len(names)]
        code, took = one(name, store, root, env)
        seconds.append(took)
        if code != SCENARIOS[name][1]:
            wrong_exit.append(f"#{i} {name}: exit {code}")
        print(f"soak: {i + 1}/{args.runs} {name:<9} exit {code:<3} {took:5.1f} s", flush=True)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    # every experiment: the default is one per dataset (mlproj-diabetes, mlproj-SyntheticTable)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=10_000)
    statuses = collections.Counter(r.info.status for r in runs)
    expected = collections.Counter()
    for i in range(args.runs):
        name = names[i % len(names)]
        if name != "resume":  # resume continues the killed run: it makes no run of its own
            expected[SCENARIOS[name][2]] += 1
        else:
            expected["KILLED"] -= 1
            expected["FINISHED"] += 1
    leaked_temp = sorted(str(t) for t in set(Path(tempfile.gettempdir()).glob("mlproj-*")) - temp_before)
    summary = {
        "runs_started": args.runs,
        "runs_in_store": len(runs),
        "statuses": dict(statuses),
        "expected_statuses": {k: v for k, v in expected.items() if v},
        "running": statuses.get("RUNNING", 0),
        "wrong_exit_codes": wrong_exit,
        "orphan_files": orphans(root),
        "leaked_temp_dirs": leaked_temp,
        "wall_s": round(time.monotonic() - started, 1),
        "mean_run_s": round(sum(seconds) / max(1, len(seconds)), 2),
        "workdir": str(root),
    }
    ok = (
        summary["running"] == 0
        and not wrong_exit
        and not summary["orphan_files"]
        and not leaked_temp
        and dict(statuses) == summary["expected_statuses"]
    )
    print(json.dumps({"ok": ok, **summary}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
