"""A model on a labelled file: `python -m mlproj.evaluate MODEL FILE`.

MODEL is what mlproj.predict takes (models:/NAME@champion, models:/m-<id>, runs:/<id>/model, a local folder);
FILE a CSV or Parquet file holding the model's feature columns and its target column (the one named at
training, recorded in the model's mlproj.json). The metrics are training's own, computed by the same
torchmetrics code: a new evaluation run logs them as `test_<metric>`; with --run-id they go into that run as
`eval_<metric>` (its `test_*` are the training's). Plots under evaluation/, a per-class report for classifiers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from mlproj import startup, tags
from mlproj.errors import InputError, MlprojError, ModelLoadError, report
from mlproj.metrics import CLASSIFICATION, REGRESSION
from mlproj.predict import connect_and_read, one_line

FOLDER = "evaluation"  # the artifacts' folder on the run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlproj.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("model", help="models:/NAME@champion, models:/NAME/VERSION, runs:/<id>/model, a local folder")
    p.add_argument("file", type=Path, help="a labelled .csv or .parquet file")
    p.add_argument("--target", help="the target column (default: the one the model was trained on)")
    p.add_argument("--run-id", help="log into this run (as eval_<metric>) instead of a new evaluation run")
    p.add_argument("--experiment", help="a new run's experiment (default: the model's training run's, else mlproj)")
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    p.add_argument("--registry-uri", help="default: the tracking URI")
    args = p.parse_args(argv)
    try:
        evaluate(args)
        return 0
    except MlprojError as exc:
        return report(exc, "mlproj.evaluate", one_line(str(exc)))


def evaluate(args: argparse.Namespace) -> dict[str, float]:
    rows = connect_and_read(args.tracking_uri, args.registry_uri, args.file)
    model, meta, trained_in = load(args.model)
    kind, labels = meta.get("kind"), list(meta.get("labels") or [])
    if kind not in (REGRESSION, CLASSIFICATION) or meta.get("inputs") is not None:
        raise InputError(f"{args.model}: mlproj.evaluate takes table models (regression, classification); not {kind}")
    target = args.target or meta.get("target")
    if not target:
        raise InputError(f"{args.model} does not record its target column (an older model): give --target COLUMN")
    if target not in rows.columns:
        raise InputError(f"{args.file}: no column {target!r} (the model's target); columns: {list(rows.columns)[:10]}")
    rows = labelled(rows, target)
    stage = "eval" if args.run_id else "test"
    values, predictions = measure(model, meta, rows, target, stage)
    artifacts = figures(kind, rows[target], predictions, labels)
    per_class = class_report(rows[target], predictions, labels) if kind == CLASSIFICATION else None
    run_id = log(args, values, artifacts, per_class, trained_in)
    show(values, per_class, run_id, args)
    return values


def load(uri: str) -> tuple[Any, dict[str, Any], str | None]:
    """The pyfunc model, its mlproj.json, and the run that trained it (if any)."""
    import mlflow
    from mlflow.models import Model

    from mlproj.packaging.pyfunc import META_FILE

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        saved = Model.load(str(local))
        meta = json.loads((local / saved.flavors["python_function"]["data"] / META_FILE).read_text())
        model = mlflow.pyfunc.load_model(str(local))
        startup.started()  # MLflow, torch and the model are loaded
        return model, meta, saved.run_id
    except Exception as exc:  # not found, not an mlproj model, damaged
        raise ModelLoadError(f"cannot load {uri}: {getattr(exc, 'message', None) or exc}") from exc


def labelled(rows: pd.DataFrame, target: str) -> pd.DataFrame:
    missing = int(rows[target].isna().sum())
    if missing:
        print(f"mlproj.evaluate: {missing} rows without a value in {target!r} left out", file=sys.stderr)
    rows = rows[rows[target].notna()].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"no row has a value in the target column {target!r}")
    return rows


def measure(
    model: Any, meta: dict[str, Any], rows: pd.DataFrame, target: str, stage: str
) -> tuple[dict[str, float], pd.DataFrame]:
    """The model's metrics on labelled rows (`meta`: its mlproj.json: kind, labels, the decision threshold)."""
    kind, labels = meta.get("kind"), list(meta.get("labels") or [])
    from mlflow.exceptions import MlflowException

    from mlproj.scores import probability_columns, score

    wanted = model.metadata.get_input_schema().input_names()
    try:
        params = {"probabilities": True} if kind == CLASSIFICATION else None
        predictions = model.predict(rows[[c for c in rows.columns if c in wanted]], params=params)
        if kind == REGRESSION:
            return score(
                kind, labels, rows[target], predictions["prediction"].to_numpy(float), None, stage
            ), predictions
        probs = probability_columns(predictions, labels)
        threshold = (meta.get("preprocessing") or {}).get("threshold")
        values = score(kind, labels, rows[target], predictions["prediction"].to_numpy(), probs, stage, threshold)
        return values, predictions
    except (MlflowException, ValueError) as exc:
        raise InputError(getattr(exc, "message", str(exc)).split("Error: ")[-1]) from exc


def figures(kind: str, y_true: pd.Series, predictions: pd.DataFrame, labels: list[Any]) -> dict[str, Any]:
    from mlproj import plots

    found = plots.figures(kind, {}, y_true, predictions, labels)
    found.pop("plots/learning_curves.png", None)  # no training here
    return {f"{FOLDER}/{Path(name).name}": fig for name, fig in found.items()}


def class_report(y_true: pd.Series, predictions: pd.DataFrame, labels: list[Any]) -> dict[str, Any]:
    """Precision, recall, F1 and support per class (scikit-learn's report), labels as text."""
    from sklearn.metrics import classification_report

    from mlproj.scores import _key

    names = [_key(label) for label in labels]
    truth, predicted = y_true.map(_key), predictions["prediction"].map(_key)
    return classification_report(truth, predicted, labels=names, output_dict=True, zero_division=0)


def log(
    args: argparse.Namespace,
    values: dict[str, float],
    artifacts: dict[str, Any],
    per_class: dict[str, Any] | None,
    trained_in: str | None,
) -> str:
    from mlflow.tracking import MlflowClient

    from mlproj import plots

    client = MlflowClient()
    run_id = args.run_id or new_run(client, args, trained_in)
    try:
        client.log_batch(run_id, metrics=[_metric(k, v) for k, v in values.items()])
        if per_class is not None:
            client.log_dict(run_id, per_class, f"{FOLDER}/per_class.json")
        plots.log_plots(client, run_id, artifacts)
        client.set_tag(run_id, tags.EVALUATED_MODEL, args.model)
        client.set_tag(run_id, tags.EVALUATED_FILE, str(args.file))
    except Exception:
        if not args.run_id:
            client.set_terminated(run_id, "FAILED")
        raise
    if not args.run_id:
        client.set_terminated(run_id, "FINISHED")
    return run_id


def new_run(client: Any, args: argparse.Namespace, trained_in: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment_id = None
    if args.experiment is None and trained_in:
        try:
            experiment_id = client.get_run(trained_in).info.experiment_id  # beside the run that trained it
        except MlflowException:
            experiment_id = None
    if experiment_id is None:
        name = args.experiment or "mlproj"
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else client.create_experiment(name)
    run_tags = {tags.EVALUATION_OF: trained_in} if trained_in else {}
    return client.create_run(experiment_id, run_name=f"evaluate {args.file.name}", tags=run_tags).info.run_id


def _metric(key: str, value: float) -> Any:
    import time

    from mlflow.entities import Metric

    return Metric(key, value, int(time.time() * 1000), 0)


def show(values: dict[str, float], per_class: dict[str, Any] | None, run_id: str, args: argparse.Namespace) -> None:
    lines = [f"mlproj.evaluate: {args.model} on {args.file} (run {run_id})"]
    lines += [f"  {name:<16} {values[name]:.6g}" for name in sorted(values)]
    if per_class is not None:
        lines.append(f"  {'class':<16} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
        for name, row in per_class.items():
            if isinstance(row, dict) and name not in ("macro avg", "weighted avg", "micro avg"):
                p, r, f = row["precision"], row["recall"], row["f1-score"]
                lines.append(f"  {name:<16} {p:>9.4f} {r:>9.4f} {f:>9.4f} {int(row['support']):>8}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    with startup.quick_start():  # the process's command: mlproj.startup
        sys.exit(main())
