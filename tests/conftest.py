"""Shared fixtures: configs composed in-process, a real sqlite MLflow store per test, small real tables."""

from __future__ import annotations

import multiprocessing.process
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mlproj.config.schema import config_dir

# Tiny, fast training for every in-process run: the whole path, a few batches.
QUICK = [
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.progress_bar=none",
    "trainer.model_summary=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


# --- the test tiers: a test that starts a process is `slow` (scripts/test.sh runs it only with --all) ---------
# Counted: any child process (subprocess, multiprocessing, torch's spawn) but a few system tools that libraries
# run in-process for a fact (git for the commit id, uname/ldconfig for the platform, lscpu for joblib's count
# of physical cores): milliseconds, no interpreter, no server.
QUICK_TOOLS = frozenset({"git", "uname", "ldconfig", "nvidia-smi", "lscpu"})
_spawned: list[str] = []
_popen_init = subprocess.Popen.__init__


def _recording_popen_init(self, args, *rest, **kwargs):  # type: ignore[no-untyped-def]
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    if Path(str(argv[0]).split()[0]).name not in QUICK_TOOLS:
        _spawned.append(" ".join(map(str, argv))[:120])
    _popen_init(self, args, *rest, **kwargs)


def _recording_start(self):  # type: ignore[no-untyped-def]
    _spawned.append(f"multiprocessing {type(self).__name__}")
    return _process_start(self)


subprocess.Popen.__init__ = _recording_popen_init  # type: ignore[method-assign]
_process_start = multiprocessing.process.BaseProcess.start
multiprocessing.process.BaseProcess.start = _recording_start  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _slow_if_it_spawns(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test that starts a process without the `slow` marker (set up first, torn down last: the
    fixtures it uses, servers included, are counted)."""
    _spawned.clear()
    yield
    if _spawned and request.node.get_closest_marker("slow") is None:
        pytest.fail(f"starts a process but is not marked slow: {_spawned[0]}", pytrace=False)


def compose_cfg(*overrides: str) -> DictConfig:
    """The config `python -m mlproj OVERRIDES` runs, composed in-process."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    return compose_cfg


def train_once(folder: Path, *overrides: str):  # -> (store URI, RunResult, config)
    """One finished run in `folder` (a store of its own), for the module-scoped fixtures of tests that only
    inspect a finished run: trained once per module, not once per test."""
    from mlproj.train import run

    store = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = compose_cfg(*QUICK, f"tracking.uri='{store}'", *overrides)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        return store, run(cfg, list(overrides), folder / "out"), cfg
    finally:
        os.chdir(cwd)


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A real, fresh sqlite MLflow store in tmp_path (absolute URI)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    # What an in-process run tells the ranks it launches; set by one test, it must not reach the next one.
    for var in ("MLPROJ_CHECKPOINT_DIR", "MLPROJ_RESUME_CHECKPOINT", "MLPROJ_PARENT_RUN_ID", "MLPROJ_SWEPT_KEYS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    yield
    import mlflow

    while mlflow.active_run():
        mlflow.end_run()


def houses_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A real-looking table: an ID column, string categoricals with gaps, numeric gaps, two targets."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "house_id": [f"H{i:05d}" for i in range(rows)],
            "area": rng.normal(120, 30, rows).round(1),
            "rooms": rng.integers(1, 7, rows),
            "city": rng.choice(["paris", "lyon", "nice", None], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "heating": rng.choice(["gas", "electric", "heat pump"], rows),
        }
    )
    df.loc[rng.choice(rows, rows // 10, replace=False), "area"] = np.nan
    city_premium = df["city"].map({"paris": 80000, "lyon": 30000, "nice": 50000}).fillna(0)
    price = 2000 * df["area"].fillna(120) + 15000 * df["rooms"] + city_premium + rng.normal(0, 8000, rows)
    df["price"] = price.round(0)
    df["segment"] = np.where(price > price.median(), "premium", "standard")
    return df


def segment_overrides(store: str, csv: Path) -> list[str]:
    """A quick classification run on the houses table (string labels from the `segment` column)."""
    return [
        *QUICK,
        f"tracking.uri='{store}'",
        "data=csv",
        f"data.path='{csv}'",
        "data.target=segment",
        "data.exclude=[price]",
    ]


@pytest.fixture
def houses_csv(tmp_path: Path) -> Path:
    path = tmp_path / "houses.csv"
    houses_frame().to_csv(path, index=False)
    return path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`python -m mlproj ARGS` as a user types it, in its own process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mlproj", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_main(*args: str) -> int:
    """`python -m mlproj ARGS` in this process (mlproj.__main__.main, as the console script calls it); returns
    the exit code. What it printed: the `capsys` fixture's readouterr()."""
    from mlproj.__main__ import main

    argv = sys.argv
    sys.argv = ["mlproj", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code


def wait_until_serving(port: int, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Poll a started `mlflow models serve` until /ping answers; fail with its log if it dies or stays silent."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout  # two interpreters, torch and the model: slow on a loaded machine
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
            return
        except OSError:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no answer: " + log.read_text()[-3000:]
            time.sleep(0.25)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `mlflow server` (started as users do, `python -m mlproj.server`) on a loopback port: sqlite
    backend, proxied artifacts. It can be stopped and started again on the same port and store, as a
    tracking server that goes away and comes back."""

    def __init__(self, root: Path, port: int | None = None, backend_store_uri: str | None = None) -> None:
        self.root, self.port = root, port or free_port()
        self.backend_store_uri = backend_store_uri or f"sqlite:///{root / 'server.db'}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> Server:  # a first start migrates a new store: slow when loaded
        import time
        import urllib.request

        command = [sys.executable, "-m", "mlproj.server", "--port", str(self.port)]
        command += ["--backend-store-uri", self.backend_store_uri]
        command += ["--artifacts-destination", str(self.root / "artifacts")]
        log = (self.root / "server.log").open("a")
        self.proc = subprocess.Popen(
            command, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/health", timeout=1).read() == b"OK":
                    return self
            except OSError:
                time.sleep(0.25)
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "server.log").read_text()[-2000:])
        log_tail = (self.root / "server.log").read_text()[-2000:]
        raise RuntimeError(f"mlflow server did not answer /health within {timeout} s:\n{log_tail}")

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and its uvicorn workers, abruptly
            self.proc.wait(30)
        self.proc = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` shared by the tests that only need one."""
    server = Server(tmp_path_factory.mktemp("server")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real, throwaway PostgreSQL cluster (tests/postgres.py), shared by the tests of a session; each test
    takes fresh databases with `postgres.database()`. Skipped only where PostgreSQL is not installed."""
    from tests.postgres import Cluster, missing_reason

    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    cluster = Cluster(free_port())
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def table_package(network, model_cfg: dict, pre, raw: pd.DataFrame):
    """A packaged table model as a run makes one (mlproj.packaging.package), from a network and its config node."""
    from mlproj.packaging.pyfunc import Package, input_example
    from mlproj.tasks.supervised import outputs

    sizes = {"in_features": pre.num_features, "out_features": outputs(pre.task, len(pre.labels), None)}
    recipe = {"family": "model", "node": model_cfg, "required": sizes}
    return Package(network, recipe, pre, pre.task, list(pre.labels), example=input_example(pre, raw))
