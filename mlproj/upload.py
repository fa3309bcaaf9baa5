"""Log a run kept on local disk into its MLflow run: `python -m mlproj.upload outputs/.../unlogged`.

When the tracking server is lost mid-run and does not come back within tracking.retry_for, the train path
keeps what the server did not get (unsent metrics, the packaged model, plots, the test results) in an
`unlogged/` folder beside the run's outputs. Once the server is back, this sends it all to the same run,
ends the run FINISHED, and, if the run was trained with a registry gate, applies it. The folder is kept
(renamed `uploaded/`) so it is clear it has been sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlproj import tags
from mlproj.errors import ConfigError, MlprojError, report
from mlproj.tracking.outage import BATCH_LIMIT, METRICS_FILE, RUN_FILE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mlproj.upload", description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="the unlogged/ folder the training command named")
    p.add_argument("--tracking-uri", help="default: the one the run was trained against (if it held no secret)")
    args = p.parse_args(argv)
    try:
        return upload(args)
    except MlprojError as exc:
        return report(exc, "mlproj.upload")


def upload(args: argparse.Namespace) -> int:
    record_path = args.folder / RUN_FILE
    if not record_path.is_file():
        if (args.folder.with_name("uploaded") / RUN_FILE).is_file():
            print(f"mlproj.upload: {args.folder} was already uploaded (now {args.folder.with_name('uploaded')})")
            return 0
        raise ConfigError(f"{record_path} not found (is {args.folder} an unlogged/ folder?)")
    record = json.loads(record_path.read_text())
    uri = args.tracking_uri or record["tracking_uri"]
    if "***" in uri:
        raise ConfigError("the stored tracking URI is masked; pass --tracking-uri")

    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from mlproj.tracking import outage

    if outage.is_remote(uri):
        outage.probe(uri)  # TrackingUnreachable: exit 1, nothing sent
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    run_id = record["run_id"]
    lines = (args.folder / METRICS_FILE).read_text().splitlines() if (args.folder / METRICS_FILE).exists() else []
    metrics = [Metric(*json.loads(line)) for line in lines if line.strip()]
    for start in range(0, len(metrics), BATCH_LIMIT):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH_LIMIT])
    if record.get("objective"):
        client.log_metric(run_id, *record["objective"])
    model_uri = record.get("model_uri")
    if (args.folder / "model" / "MLmodel").is_file():
        from mlproj.packaging import pyfunc as packaging

        with mlflow.start_run(run_id=run_id):
            model_uri = packaging.log_saved(args.folder / "model").model_uri
        client.set_tag(run_id, tags.MODEL_URI, model_uri)
    plots = args.folder / "plots"
    if plots.is_dir():
        client.log_artifacts(run_id, str(plots), "plots")
    client.set_tag(run_id, tags.UPLOADED, "true")
    client.set_terminated(run_id, "FINISHED")
    print(
        f"mlproj.upload: run {run_id} FINISHED: {len(metrics)} metrics" + (f", model {model_uri}" if model_uri else "")
    )
    args.folder.rename(args.folder.with_name("uploaded"))
    if record.get("registry") and model_uri:
        from mlproj import register

        return register.main(["--run-id", run_id, "--tracking-uri", uri]) or 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
