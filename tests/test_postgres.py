"""`mlproj[postgres]`: a PostgreSQL URI without its driver is one line naming the extra, before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlproj.config.drivers import check_database_uri
from mlproj.errors import ConfigError
from tests.conftest import run_cli

URI = "postgresql://mlflow:s3cret@127.0.0.1:1/mlflow"
HINT = "a PostgreSQL URI needs its database driver; install it with pip install 'mlproj[postgres]'"


@pytest.fixture
def no_driver(monkeypatch):
    """An interpreter without psycopg and psycopg2 (None in sys.modules makes their import fail)."""
    for name in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, name, None)


def test_a_postgresql_uri_without_its_driver_names_the_extra(no_driver):
    for uri in (URI, "postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"):
        with pytest.raises(ConfigError) as err:
            check_database_uri("sweep.storage", uri)
        assert str(err.value) == f"sweep.storage: {HINT}"
        assert "s3cret" not in str(err.value)


def test_other_uris_need_nothing_and_an_installed_driver_passes():
    for uri in (None, "", "sqlite:///x.db", "http://127.0.0.1:5000", "databricks", "file:///tmp/mlruns", URI):
        check_database_uri("tracking.uri", uri)  # the driver is installed here (dev pulls mlproj[postgres])
    with pytest.raises(ConfigError, match="write postgresql://"):
        check_database_uri("tracking.uri", "postgres://u@h/db")


def test_config_checks_cover_every_uri(make_cfg, no_driver):
    from mlproj.config.checks import check_config

    for key in ("tracking.uri", "tracking.registry_uri", "sweep.storage"):
        with pytest.raises(ConfigError, match=f"^{key}: a PostgreSQL URI needs"):
            check_config(make_cfg(f"{key}='{URI}'"))


@pytest.fixture
def driverless_env(tmp_path):
    """A subprocess environment whose interpreter cannot import psycopg or psycopg2."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.modules['psycopg'] = None\nsys.modules['psycopg2'] = None\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_commands_refuse_in_one_line(tmp_path, driverless_env):
    sweep = run_cli("-m", "hparams_search=optuna", f"sweep.storage={URI}", cwd=tmp_path, env=driverless_env)
    assert sweep.returncode == 2 and sweep.stderr.strip() == f"mlproj: error: sweep.storage: {HINT}", sweep.stderr
    run = run_cli(f"tracking.uri={URI}", cwd=tmp_path, env=driverless_env)
    assert run.returncode == 2 and run.stderr.strip() == f"mlproj: error: tracking.uri: {HINT}", run.stderr
    env = {**os.environ, **driverless_env}
    server = subprocess.run(
        [sys.executable, "-m", "mlproj.server", "--backend-store-uri", URI],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert server.returncode == 2
    assert server.stderr.strip() == f"mlproj.server: error: --backend-store-uri: {HINT}"
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "mlruns").exists()  # nothing created


@pytest.mark.slow
def test_the_throwaway_cluster_is_loopback_only_and_gone_afterwards():
    import socket

    import psycopg2

    from tests.conftest import free_port
    from tests.postgres import Cluster, missing_reason

    if missing_reason():
        pytest.skip(missing_reason())
    cluster = Cluster(free_port()).start()
    try:
        conn = psycopg2.connect(cluster.database("probe"))
        with conn.cursor() as cur:
            cur.execute("SHOW listen_addresses")
            assert cur.fetchone()[0] == "127.0.0.1"
            cur.execute("SHOW data_directory")
            assert cur.fetchone()[0].startswith(str(cluster.root))  # a fresh cluster in a temporary folder
        conn.close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(cluster.uri("probe").replace(":pg-", ":wrong-"))  # TCP logins need the password
    finally:
        cluster.stop()
    assert not cluster.root.exists()
    with socket.socket() as s:  # the server is stopped: nothing listens on its port
        assert s.connect_ex(("127.0.0.1", cluster.port)) != 0


def test_no_binaries_is_a_clear_skip_reason(monkeypatch):
    from tests import postgres

    monkeypatch.setattr(postgres, "BIN_DIRS", ["/nonexistent"])
    monkeypatch.setenv("PATH", "/nonexistent")
    assert (
        postgres.missing_reason() == "PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql or set PG_BIN"
    )
