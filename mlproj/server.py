"""Start an MLflow tracking server for mlproj: `python -m mlproj.server [--port 5000]`.

Binds 127.0.0.1 by default, keeps runs and the registry in a sqlite database (or PostgreSQL:
`--backend-store-uri postgresql://user:password@host:5432/mlflow`, with `pip install 'mlproj[postgres]'`),
and proxies artifacts (`--serve-artifacts`), so clients upload and download through the server and need no
access to its storage. Point runs at it with `tracking=server tracking.uri=http://127.0.0.1:5000`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def command(args: argparse.Namespace) -> list[str]:
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    return [
        mlflow,
        "server",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--backend-store-uri",
        args.backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        args.artifacts_destination,
        "--workers",
        str(args.workers),
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m mlproj.server", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--backend-store-uri", default=f"sqlite:///{Path.cwd() / 'mlflow-server.db'}")
    p.add_argument("--artifacts-destination", default=str(Path.cwd() / "mlartifacts"))
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    from mlproj.config.drivers import check_database_uri
    from mlproj.errors import ConfigError, report

    try:  # before exec: mlflow's own failure is a long traceback from a worker process
        check_database_uri("--backend-store-uri", args.backend_store_uri)
    except ConfigError as exc:
        sys.exit(report(exc, "mlproj.server"))
    cmd = command(args)
    from mlproj.tracking.masking import redact

    print(f"mlproj.server: {redact(' '.join(cmd))}", flush=True)  # a database URI's password stays off logs
    print(f"mlproj.server: train with tracking=server tracking.uri=http://{args.host}:{args.port}", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
