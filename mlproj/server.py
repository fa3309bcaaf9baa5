"""Start an MLflow tracking server for mlproj: `python -m mlproj.server [--port 5000]`.

Binds 127.0.0.1 by default, keeps runs and the registry in a sqlite database (or PostgreSQL:
`--backend-store-uri postgresql://user:password@host:5432/mlflow`, with `pip install 'mlproj[postgres]'`),
and proxies artifacts (`--serve-artifacts`), so clients upload and download through the server and need no
access to its storage. Point runs at it with `tracking=server tracking.uri=http://127.0.0.1:5000`.

Another interface (`--host 0.0.0.0`) serves the store to the network, so it needs `--allow-remote`, and then
authentication in front: `--auth` (MLflow's basic-auth app: users and passwords, `pip install 'mlproj[auth]'`)
or a reverse proxy that authenticates, with TLS either way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def command(args: argparse.Namespace) -> list[str]:
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    auth = ["--app-name", "basic-auth"] if args.auth else []
    return [
        mlflow,
        "server",
        *auth,
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
    p.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback")
    p.add_argument("--auth", action="store_true", help="MLflow's basic-auth app: every request needs a user")
    args = p.parse_args(argv)
    from mlproj.config.drivers import check_database_uri
    from mlproj.errors import ConfigError, report

    try:  # before exec: mlflow's own failure is a long traceback from a worker process
        check_database_uri("--backend-store-uri", args.backend_store_uri)
        check_host(args.host, args.allow_remote)
        if args.auth:
            check_auth()
    except ConfigError as exc:
        sys.exit(report(exc, "mlproj.server"))
    cmd = command(args)
    from mlproj.tracking.masking import redact

    print(f"mlproj.server: {redact(' '.join(cmd))}", flush=True)  # a database URI's password stays off logs
    if not is_loopback(args.host):
        print(f"mlproj.server: {REMOTE_ADVICE if not args.auth else TLS_ADVICE}", flush=True)
    users = " with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD set" if args.auth else ""
    print(f"mlproj.server: train with tracking=server tracking.uri=http://{args.host}:{args.port}{users}", flush=True)
    os.execv(cmd[0], cmd)


REMOTE_ADVICE = (
    "serving to the network WITHOUT authentication: anyone who reaches this port can read, change and delete "
    "runs and models. Put authentication in front: restart with --auth (MLflow's basic-auth app), or serve on "
    "127.0.0.1 behind a reverse proxy (nginx, Caddy) that authenticates and terminates TLS"
)
TLS_ADVICE = "basic auth sends passwords in clear over plain HTTP: put a TLS-terminating proxy in front"


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_host(host: str, allow_remote: bool) -> None:
    from mlproj.errors import ConfigError

    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"--host {host} serves the tracking store to the network; add --allow-remote, with --auth (MLflow's "
            "basic-auth app) or an authenticating proxy in front, or keep the default --host 127.0.0.1"
        )


def check_auth() -> None:
    """What MLflow's basic-auth app needs, said in one line before exec (its own failure is a traceback)."""
    import importlib.util
    import secrets

    from mlproj.errors import ConfigError

    if importlib.util.find_spec("flask_wtf") is None:
        raise ConfigError("--auth needs MLflow's auth extras: pip install 'mlproj[auth]' (Flask-WTF)")
    # The first start creates the admin user from this password (MLflow ships none); later starts reuse it.
    has_config = os.environ.get("MLFLOW_AUTH_CONFIG_PATH") or Path("basic_auth.db").exists()
    if not (os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD") or has_config):
        raise ConfigError(
            "--auth: set MLFLOW_AUTH_ADMIN_PASSWORD (the admin user's password, used when the user store "
            "basic_auth.db is created) or MLFLOW_AUTH_CONFIG_PATH (MLflow's basic_auth.ini)"
        )
    # CSRF protection needs one key shared by the server's workers: a fresh one per start unless given.
    os.environ.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))


if __name__ == "__main__":
    main()
