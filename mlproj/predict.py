"""Batch predictions from a logged or registered model: `python -m mlproj.predict MODEL INPUT -o OUTPUT`.

MODEL is any MLflow model URI: `models:/NAME@champion`, `models:/NAME/3`, `models:/m-<id>`, `runs:/<id>/model`.
INPUT and OUTPUT are CSV or Parquet, by extension. The output is the input rows with the prediction
columns appended (`prediction`, and `probability_<label>` with --probabilities).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from mlproj import startup
from mlproj.errors import ConfigError, InputError, MlprojError, ModelLoadError, report


def read_rows(path: Path) -> pd.DataFrame:
    from mlproj.data.sources import read_table

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return read_table(path)


def connect_and_read(tracking: str | None, registry: str | None, path: Path) -> pd.DataFrame:
    """Point MLflow at the stores the command names, then read its file of rows (mlproj.predict, mlproj.evaluate)."""
    import mlflow

    from mlproj.config.schema import TrackingConfig
    from mlproj.tracking.runs import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(TrackingConfig(uri=tracking)))
    if registry:
        mlflow.set_registry_uri(registry)
    try:
        return read_rows(path)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def write_table(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from mlproj.data.table import is_parquet

    if is_parquet(path):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def one_line(message: str) -> str:
    """The first and last lines of a multi-line message (MLflow puts the cause last)."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()] or ["unknown error"]
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlproj.predict", description=__doc__.splitlines()[0])
    p.add_argument("model", help="models:/NAME@champion, models:/NAME/VERSION, models:/m-<id>, runs:/<id>/model")
    p.add_argument("input", type=Path, help="a .csv or .parquet file of raw feature rows")
    p.add_argument("-o", "--output", type=Path, default=Path("predictions.csv"))
    p.add_argument("--probabilities", action="store_true", help="classification: add probability_<label> columns")
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    p.add_argument("--registry-uri", help="default: the tracking URI")
    args = p.parse_args(argv)
    try:
        return predict(args)
    except MlprojError as exc:
        return report(exc, "mlproj.predict", one_line(str(exc)))


def predict(args: argparse.Namespace) -> int:
    import mlflow
    from mlflow.exceptions import MlflowException

    rows = connect_and_read(args.tracking_uri, args.registry_uri, args.input)
    try:
        model = mlflow.pyfunc.load_model(args.model)
    except Exception as exc:  # not found, damaged, tampered (ModelLoadError, possibly from the model's own code/)
        raise ModelLoadError(f"cannot load {args.model}: {getattr(exc, 'message', None) or exc}") from exc
    startup.started()  # MLflow, torch and the model are loaded
    try:
        params = {"probabilities": True} if args.probabilities else None
        # Only the model's own columns go in (IDs and the target may sit in the file): MLflow would warn.
        schema = model.metadata.get_input_schema()
        wanted = schema.input_names()
        for spec in schema.inputs:  # a file holds dates as text; the schema says datetime (a forecaster's time)
            if spec.type.name == "datetime" and spec.name in rows.columns:
                rows[spec.name] = pd.to_datetime(rows[spec.name])
        predictions = model.predict(rows[[c for c in rows.columns if c in wanted]], params=params)
    except (MlflowException, ValueError) as exc:
        raise InputError(getattr(exc, "message", str(exc)).split("Error: ")[-1]) from exc
    # One prediction per row beside its row; a forecaster answers per series and step: its frame alone.
    if len(predictions) == len(rows) and "step" not in getattr(predictions, "columns", []):
        out = pd.concat([rows.reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)
    else:
        out = predictions
    write_table(out, args.output)
    print(f"{len(out)} predictions from {args.model} written to {args.output}")
    return 0


if __name__ == "__main__":
    with startup.quick_start():  # the process's command: mlproj.startup
        sys.exit(main())
