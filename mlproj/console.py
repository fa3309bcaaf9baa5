"""What a run prints: the quiet mode, the final summary, and the report of a run that had already finished."""

from __future__ import annotations

import logging
from typing import Any

from mlproj import metrics, tags
from mlproj.results import RunResult


def quiet() -> None:
    """`quiet=true`: warnings only from the libraries; no progress bar or model summary (set below)."""
    for name in ("pytorch_lightning", "lightning_fabric", "mlflow", "mlproj"):
        logging.getLogger(name).setLevel(logging.WARNING)


def print_summary(result: RunResult) -> None:
    main = metrics.main_metric(result.task)
    lines = ["", f"mlproj: run {result.run_id} FINISHED in experiment {result.experiment!r}"]
    found = result.metrics
    if any(name.startswith("baseline_") for name in found):
        lines.append(f"  {'':<16} {'network':>10} {'baseline':>10}")
    for name in sorted(n for n in found if not n.startswith("baseline_")):
        marker = "  <- main metric" if name == main else ""
        base = found.get(f"baseline_{name}")
        beside = f" {base:>10.6g}" if base is not None else ""
        lines.append(f"  {name:<16} {found[name]:>10.6g}{beside}{marker}")
    if "baseline_seconds" in found:
        lines.append(f"  baseline: scikit-learn on the same split and features, {found['baseline_seconds']:.2f} s")
    if result.model_uri:
        lines.append(f"  model: {result.model_uri}  (mlflow.pyfunc.load_model(...).predict(raw_rows))")
    from mlproj.tracking.runs import redact

    uri = redact(result.tracking_uri)
    ui = f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else f"open {uri}"
    lines.append(f"  see it: {ui}")
    print("\n".join(lines), flush=True)


def already_finished(client: Any, run_id: str, task: str, uri: str) -> RunResult:
    """resume=auto found this config's run FINISHED: report it, train nothing, register nothing again."""

    found = client.get_run(run_id)
    results = {k: v for k, v in found.data.metrics.items() if k.startswith("test_")}
    experiment = client.get_experiment(found.info.experiment_id).name
    result = RunResult(run_id, experiment, uri, results, found.data.tags.get(tags.MODEL_URI), task)
    print(f"mlproj: resume=auto: run {run_id} of this config already FINISHED; not training it again", flush=True)
    print("  (resume=null trains a new run)", flush=True)
    print_summary(result)
    return result
