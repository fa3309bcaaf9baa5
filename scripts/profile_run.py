"""Where a run's seconds go: `python scripts/profile_run.py [overrides...]` runs `python -m mlproj` in this
process and prints, per phase of the train path, wall time, process CPU time and the part spent importing.

Phases are the train path's own steps (mlproj/train.py), timed by wrapping them as their modules are imported;
time outside them is "start" (interpreter, Hydra, composing the config) or "other". A phase's imports are the
modules it imports first (torch, Lightning, MLflow are each paid once, by the first phase that needs them).
CPU time is less disturbed by other processes than wall time: compare it on a busy machine.
"""

from __future__ import annotations

import builtins
import functools
import sys
import time
from typing import Any

# (module, attribute) -> phase; patched when the module is first imported, before anyone binds the name
PHASES = {
    ("mlproj.plan", "make_plan"): "plan: checks, data, preprocessing",
    ("mlproj.tracking.runs", "connect"): "MLflow: store, experiment",
    ("mlproj.tracking.runs", "tracked_run"): "MLflow: run start/end",
    ("mlproj.tracking.runs", "log_inputs"): "MLflow: params, dataset",
    ("mlproj.training.fit", "fit_and_test"): "fit and test",
    ("mlproj.packaging.package", "package_of"): "packaged model",
    ("mlproj.packaging.package", "test_figures"): "plots",
    ("mlproj.tracking.publish", "publish"): "MLflow: metrics, model, plots",
    ("mlproj.registry.gate", "after_run"): "registry gate",
}
totals: dict[str, list[float]] = {}  # phase -> [wall, cpu, import wall]
stack: list[str] = ["start"]
import_depth = 0
_import = builtins.__import__


def _add(phase: str, wall: float = 0.0, cpu: float = 0.0, imports: float = 0.0) -> None:
    row = totals.setdefault(phase, [0.0, 0.0, 0.0])
    row[0] += wall
    row[1] += cpu
    row[2] += imports


def timed(phase: str, fn: Any) -> Any:
    if getattr(fn, "_mlproj_phase", None):
        return fn

    if phase == "MLflow: run start/end":  # a context manager: time entering and leaving it, not its body

        @functools.wraps(fn)
        def manager(*args: Any, **kwargs: Any) -> Any:
            import contextlib

            @contextlib.contextmanager
            def wrapped() -> Any:
                cm = fn(*args, **kwargs)
                value = _run(phase, cm.__enter__)
                try:
                    yield value
                except BaseException:
                    if not _run(phase, cm.__exit__, *sys.exc_info()):
                        raise
                else:
                    _run(phase, cm.__exit__, None, None, None)

            return wrapped()

        manager._mlproj_phase = phase  # type: ignore[attr-defined]
        return manager

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return _run(phase, fn, *args, **kwargs)

    call._mlproj_phase = phase  # type: ignore[attr-defined]
    return call


def _run(phase: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    outer = stack[-1]
    wall, cpu = time.perf_counter(), time.process_time()
    stack.append(phase)
    try:
        return fn(*args, **kwargs)
    finally:
        stack.pop()
        spent_wall, spent_cpu = time.perf_counter() - wall, time.process_time() - cpu
        _add(phase, spent_wall, spent_cpu)
        _add(outer, -spent_wall, -spent_cpu)  # the outer phase's own time excludes this one


def counting_import(name: str, *args: Any, **kwargs: Any) -> Any:
    global import_depth
    start = time.perf_counter()
    import_depth += 1
    try:
        module = _import(name, *args, **kwargs)
    finally:
        import_depth -= 1
    if import_depth == 0:
        _add(stack[-1], imports=time.perf_counter() - start)
    for (mod, attr), phase in PHASES.items():  # at every depth: before the importer binds the name
        found = sys.modules.get(mod)
        if found is not None and hasattr(found, attr):
            setattr(found, attr, timed(phase, getattr(found, attr)))
    return module


def main() -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    builtins.__import__ = counting_import
    sys.argv = ["mlproj", *sys.argv[1:]]
    try:
        from mlproj.__main__ import command

        command()  # as `python -m mlproj` runs it (mlproj.startup's quick start included)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        builtins.__import__ = _import
    _add("start", time.perf_counter() - wall, time.process_time() - cpu)
    report(time.perf_counter() - wall, time.process_time() - cpu)


# The phases grouped as the question "where does a default run's time go" is asked; imports counted apart.
GROUPS = {
    "start (interpreter, Hydra, config)": ("start", "other"),
    "data (checks, load, split, preprocess)": ("plan: checks, data, preprocessing",),
    "training (fit, test)": ("fit and test",),
    "packaging (the model, logged)": ("packaged model", "MLflow: metrics, model, plots"),
    "plots": ("plots",),
    "tracking (store, run, params)": (
        "MLflow: store, experiment",
        "MLflow: run start/end",
        "MLflow: params, dataset",
    ),
    "registry gate": ("registry gate",),
}


def report(wall: float, cpu: float) -> None:
    print(f"\n{'phase':<34}{'wall s':>8}{'cpu s':>8}{'imports s':>11}")
    for phase, (w, c, i) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print(f"{phase:<34}{w:8.2f}{c:8.2f}{i:11.2f}")
    imports = sum(r[2] for r in totals.values())
    print(f"{'total (in this process)':<34}{wall:8.2f}{cpu:8.2f}{imports:11.2f}")
    print(f"\n{'by part, imports apart':<40}{'wall s':>8}")
    print(f"{'imports (all phases)':<40}{imports:8.2f}")
    for group, phases in GROUPS.items():
        own = sum(totals[p][0] - totals[p][2] for p in phases if p in totals)
        print(f"{group:<40}{own:8.2f}")


if __name__ == "__main__":
    main()
