"""A team's setup, for real: one Optuna study worked by several processes started at once (as several machines
would), on PostgreSQL (a throwaway cluster, tracking through `mlproj.server` on it) and on sqlite (one machine).

Each worker is its own `python -m mlproj -m hparams_search=optuna sweep.storage=...` in its own folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import Server
from tests.postgres import PASSWORD

SEARCH = [
    "-m",
    "hparams_search=optuna",
    "hydra.sweeper.sampler=random",
    "optimizer.lr=choice(0.00001,0.00003,0.003)",  # over the preset's: mostly hopeless, the pruner has work
    "trainer.max_epochs=6",
    "trainer.early_stopping=false",
    "tracking.log_plots=false",
    "quiet=true",
]


@pytest.fixture(scope="module")
def pg_server(postgres, tmp_path_factory):
    """`mlproj.server` on a fresh PostgreSQL database, artifacts proxied: what a team shares. As the README
    advises, the password is not in the URI (nor on the server's command line): libpq reads PGPASSWORD."""
    uri = postgres.database("mlflow").replace(f":{PASSWORD}@", "@")
    server = Server(tmp_path_factory.mktemp("pg-server"), backend_store_uri=uri)
    os.environ["PGPASSWORD"] = PASSWORD  # inherited by the server it starts
    try:
        yield server.start()
    finally:
        os.environ.pop("PGPASSWORD", None)
        server.stop()


def _stores(backend: str, tmp_path: Path, request) -> tuple[str, str]:
    """(tracking URI, Optuna storage) for a backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    server = request.getfixturevalue("pg_server")
    cluster = request.getfixturevalue("postgres")
    return server.url, cluster.database()


# A paced trial (tests.models.Slow), so one can be interrupted mid-training; the bare sweeper (the preset's
# space is the MLP's), no pruner (the trial must run until it is killed).
PACED = [
    "-m",
    "hydra/sweeper=mlproj_optuna",
    "hydra.sweeper.storage=${sweep.storage}",
    "hydra.sweeper.pruner=none",
    "optimizer.lr=choice(0.001,0.003)",
    "model=linear",
    "model._target_=tests.models.Slow",
    "+model.delay=0.02",
    "trainer.max_epochs=30",
    "trainer.early_stopping=false",
    "tracking.log_plots=false",
    "quiet=true",
]


def start_workers(
    count: int, trials: int, tracking: str, storage: str, tmp_path: Path, search: list[str] = SEARCH, first: int = 0
) -> list[subprocess.Popen]:
    """`count` workers of one study named (as its experiment) after the test's folder: tests that share a
    server keep their runs apart."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    procs = []
    for i in range(first, first + count):
        folder = tmp_path / f"worker{i}"  # its own outputs/ and multirun/, as on another machine
        folder.mkdir()
        args = [*search, f"tracking.uri={tracking}", f"sweep.storage={storage}", f"hydra.sweeper.n_trials={trials}"]
        args += [f"tracking.experiment={tmp_path.name}", f"hydra.sweeper.study_name={tmp_path.name}"]
        log = (folder / "log.txt").open("w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mlproj", *args], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
        log.close()
    return procs


def wait_all(procs: list[subprocess.Popen], tmp_path: Path, timeout: float = 900) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for i, proc in enumerate(procs):
        try:
            codes.append(proc.wait(max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"worker {i} still running: " + (tmp_path / f"worker{i}" / "log.txt").read_text()[-3000:])
    return codes


def logs(tmp_path: Path, count: int) -> str:
    return "\n".join((tmp_path / f"worker{i}" / "log.txt").read_text()[-2500:] for i in range(count))


def sweep_runs(tracking: str, experiment: str):
    client = MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "trial"]
    return client, parents, trials


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_one_study_worked_by_workers_started_at_once(backend, tmp_path, request):
    workers, trials_each = 3, 3
    tracking, storage = _stores(backend, tmp_path, request)
    codes = wait_all(start_workers(workers, trials_each, tracking, storage, tmp_path), tmp_path)
    assert codes == [0] * workers, logs(tmp_path, workers)

    study = optuna.load_study(study_name=tmp_path.name, storage=storage)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(workers * trials_each))  # N x K trials, distinct numbers
    per_worker = Counter(t.user_attrs["mlproj_worker"] for t in study.trials)
    assert sorted(per_worker.values()) == [trials_each] * workers  # each worker ran its K, on one study
    states = Counter(t.state for t in study.trials)
    assert set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}, states
    client, parents, trials = sweep_runs(tracking, tmp_path.name)
    assert len(parents) == 1, [p.data.tags.get("mlproj.sweep") for p in parents]  # whichever worker was first
    parent = parents[0]
    assert study.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
    assert study.user_attrs["mlproj_workers"] == []  # every worker left; the last one closed the parent
    assert parent.info.status == "FINISHED"
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    # no trial run twice: one MLflow run per trial number
    assert sorted(int(t.info.run_name.split()[1]) for t in trials) == list(range(workers * trials_each))
    assert {t.info.status for t in trials} == {"FINISHED"}
    for run in [parent, *trials]:  # sweep.storage's password is masked wherever a run records it
        assert PASSWORD not in str(run.data.params) + str(run.data.tags)
    table = client.download_artifacts(parent.info.run_id, "sweep/trials.csv", str(tmp_path))
    assert len(Path(table).read_text().strip().splitlines()) == 1 + workers * trials_each  # the last summary


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_worker_killed_mid_trial_fails_its_trial_and_the_others_finish(backend, tmp_path, request):
    workers, trials_each = 3, 2
    tracking, storage = _stores(backend, tmp_path, request)
    procs = start_workers(workers, trials_each, tracking, storage, tmp_path, PACED)
    # Wait until worker 0 is training a trial (its run exists, RUNNING), then preempt it.
    deadline = time.monotonic() + 600
    victim_run = None
    while victim_run is None:
        assert time.monotonic() < deadline, logs(tmp_path, workers)
        assert procs[0].poll() is None, logs(tmp_path, workers)
        time.sleep(1)
        try:
            _, _, trials = sweep_runs(tracking, tmp_path.name)
        except Exception:  # the store or experiment is not there yet
            continue
        folder = str(tmp_path.resolve() / "worker0")
        mine = [t for t in trials if t.data.tags.get("mlproj.checkpoint_dir", "").startswith(folder)]
        running = [t for t in mine if t.info.status == "RUNNING" and t.data.metrics]  # past its first epoch
        victim_run = running[0] if running else None
    procs[0].send_signal(signal.SIGTERM)
    codes = wait_all(procs, tmp_path)
    assert codes[0] == 143 and codes[1:] == [0] * (workers - 1), logs(tmp_path, workers)
    assert "left RUNNING: other workers are still on it" in (tmp_path / "worker0" / "log.txt").read_text()

    client, parents, trials = sweep_runs(tracking, tmp_path.name)
    assert client.get_run(victim_run.info.run_id).info.status == "KILLED"
    study = optuna.load_study(study_name=tmp_path.name, storage=storage)
    number = int(victim_run.info.run_name.split()[1])
    assert study.trials[number].state == optuna.trial.TrialState.FAIL
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    others = [t for t in study.trials if t.number != number]
    assert len(others) >= (workers - 1) * trials_each  # the killed worker may have finished one before
    (parent,) = parents
    assert parent.info.status == "FINISHED"  # the others finished it; the killed one did not close it early
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}


def _train(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    cwd.mkdir()
    log = (cwd / "log.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlproj", *args], cwd=cwd, env=env, stdout=log, stderr=log)
    log.close()
    return proc


@pytest.mark.slow
def test_a_server_on_postgresql_takes_runs_from_several_processes_at_once(pg_server, tmp_path):
    """Training, the registry gate (4 writers on one model name at once), mlproj.register and serving the
    champion, all through `mlproj.server --backend-store-uri postgresql://...` with proxied artifacts."""
    from tests.test_registry import concurrent_gates

    url = pg_server.url
    common = ["debug=quick", "trainer.max_epochs=2", "tracking.log_plots=false", "quiet=true", "tracking=server"]
    common += [f"tracking.uri={url}", "tracking.experiment=pg-train", "registry.model_name=team-model"]
    common += ["++registry.thresholds.test_r2=-100"]  # every run passes: 4 versions, the champion the best
    procs = [_train([*common, f"seed={seed}", f"optimizer.lr={lr}"], tmp_path / f"run{seed}") for seed, lr in
             enumerate([0.001, 0.01, 0.03, 0.1])]  # fmt: skip
    codes = [p.wait(600) for p in procs]
    assert codes == [0] * 4, "\n".join((tmp_path / f"run{i}" / "log.txt").read_text()[-2000:] for i in range(4))
    client = MlflowClient(url)
    runs = client.search_runs([client.get_experiment_by_name("pg-train").experiment_id])
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    versions = client.search_model_versions("name = 'team-model'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]  # no version lost
    assert sorted(v.run_id for v in versions) == sorted(r.info.run_id for r in runs)
    best = min(runs, key=lambda r: r.data.metrics["val_rmse"])  # the selection metric (validation), in its direction
    assert client.get_model_version_by_alias("team-model", "champion").run_id == best.info.run_id
    for run in runs:  # the model's artifacts went through the server, into its artifacts folder
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert list((pg_server.root / "artifacts").iterdir())

    concurrent_gates(url, lock=False)  # 4 processes gating chosen values at once: exact champion and challenger

    picked = subprocess.run(
        [sys.executable, "-m", "mlproj.register", "--experiment", "pg-train", "--tracking-uri", url,
         "--model-name", "picked", "--threshold", "test_r2=-100"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert picked.returncode == 0, picked.stderr[-3000:]
    assert client.get_model_version_by_alias("picked", "champion").run_id == best.info.run_id

    _serve_champion(url, tmp_path)


def _serve_champion(url: str, tmp_path: Path) -> None:
    import json
    import urllib.request

    import mlflow
    from sklearn.datasets import load_diabetes

    from tests.conftest import free_port, wait_until_serving

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = url
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # uvicorn from this venv
    log_path = tmp_path / "serve.log"
    command = ["mlflow", "models", "serve", "-m", "models:/team-model@champion", "--env-manager", "local"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_until_serving(port, proc, log_path)
        rows = load_diabetes(as_frame=True).data.head(5)
        body = json.dumps({"dataframe_split": rows.to_dict(orient="split")}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
        )
        served = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]
        mlflow.set_tracking_uri(url)
        local = mlflow.pyfunc.load_model("models:/team-model@champion").predict(rows)["prediction"].tolist()
        assert [p["prediction"] for p in served] == pytest.approx(local)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


@pytest.mark.slow
def test_a_preempted_run_resumes_through_a_server_on_postgresql(pg_server, tmp_path):
    from tests.conftest import run_cli
    from tests.reliability import faults

    args = [*faults.PACED, "tracking=server", f"tracking.uri={pg_server.url}", "tracking.experiment=mlproj"]
    client = MlflowClient(pg_server.url)
    code, output = faults.interrupted(args, tmp_path, client, 3, signal.SIGTERM)
    assert code == 143, output[-3000:]
    killed = faults.only_run(client)
    assert killed.info.status == "KILLED"
    repo = os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])
    again = run_cli(*args, "resume=auto", cwd=tmp_path, env={"PYTHONPATH": repo})  # tests.models.Slow
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    resumed = faults.only_run(client)
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    assert faults.val_steps(client, resumed.info.run_id) == list(range(10))  # faults.PACED's epochs, none missing


@pytest.mark.slow
def test_the_store_is_backed_up_online_and_restores(pg_server, postgres, tmp_path):
    """The README's backup: pg_dump while the server runs, pg_restore into a new database, the same runs."""
    from tests.postgres import PASSWORD

    client = MlflowClient(pg_server.url)
    experiment = client.create_experiment("backup")
    run_id = client.create_run(experiment).info.run_id
    client.log_metric(run_id, "test_rmse", 42.0)
    client.set_terminated(run_id)
    env = {**os.environ, "PGPASSWORD": PASSWORD}  # not on the command line
    where = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres"]
    dump = tmp_path / "mlflow.dump"
    subprocess.run([str(postgres.bin / "pg_dump"), *where, "-Fc", "-f", str(dump), "mlflow"], env=env, check=True)
    restored = postgres.database("restored")
    subprocess.run(
        [str(postgres.bin / "pg_restore"), *where, "--no-owner", "-d", "restored", str(dump)], env=env, check=True
    )
    copy = MlflowClient(restored)  # the SQL store itself, as a new server on it would read it
    run = copy.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["test_rmse"] == 42.0
    assert {e.name for e in copy.search_experiments()} == {e.name for e in client.search_experiments()}


def _sweep_cfg(storage: str):
    from omegaconf import OmegaConf

    target = "hydra_plugins.mlproj_optuna.optuna_sweeper.MlprojOptunaSweeper"
    return OmegaConf.create({"hydra": {"sweeper": {"_target_": target, "storage": storage, "study_name": "s"}}})


def test_a_dead_worker_of_this_machine_is_dropped_when_another_leaves(tmp_path):
    import socket

    from mlproj.sweeps import study as shared

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    dead = f"{socket.gethostname()}:{2**22 + 12345}:gone00"  # above pid_max's default: no such process
    elsewhere = "another-machine:1:abcdef"
    study.set_user_attr(shared.WORKERS_ATTR, [dead, elsewhere, shared.WORKER])
    assert shared.leave(_sweep_cfg(storage)) == [elsewhere]  # a worker elsewhere cannot be asked: it counts
    assert optuna.load_study(study_name="s", storage=storage).user_attrs[shared.WORKERS_ATTR] == [elsewhere]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_storage_lock_excludes_other_processes(backend, tmp_path, request):
    """A second process asks for the study's lock while the first holds it: it gets it only after."""
    import multiprocessing

    if backend == "postgresql":
        storage = request.getfixturevalue("postgres").database()
    else:
        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    ctx = multiprocessing.get_context("spawn")
    events, asking = ctx.Queue(), ctx.Event()
    first = ctx.Process(target=_hold_lock, args=(storage, events, "first", asking, True))
    first.start()
    assert events.get(timeout=120) == ("first", "in")
    second = ctx.Process(target=_hold_lock, args=(storage, events, "second", asking, False))
    second.start()
    order = [events.get(timeout=120) for _ in range(3)]
    first.join(60), second.join(60)
    assert order == [("first", "out"), ("second", "in"), ("second", "out")]


def _hold_lock(storage: str, events, name: str, asking, holder: bool) -> None:
    from mlproj.sweeps.study import storage_lock

    if not holder:
        asking.set()
    with storage_lock(storage, "s"):
        events.put((name, "in"))
        if holder:  # hold on until the other process is asking, and a while longer
            asking.wait(120)
            time.sleep(1.5)
        events.put((name, "out"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_pruning_is_decided_by_other_workers_trials(backend, tmp_path, request):
    """Two workers started at once: A finishes two good trials quickly; B's one trial is hopeless and slow.
    B has finished no trial of its own, so when the median pruner stops it (it needs 2 finished trials),
    it decided on A's."""
    tracking, storage = _stores(backend, tmp_path, request)
    common = ["-m", "hydra/sweeper=mlproj_optuna", "hydra.sweeper.storage=${sweep.storage}", "model=linear"]
    common += ["optimizer.weight_decay=choice(0.0,0.00001)", "trainer.max_epochs=40", "trainer.early_stopping=false"]
    common += ["tracking.log_plots=false", "quiet=true"]
    fast = [*common, "optimizer.lr=0.1"]
    slow = [*common, "optimizer.lr=0.00001", "model._target_=tests.models.Slow", "+model.delay=0.2"]
    procs = start_workers(1, 2, tracking, storage, tmp_path, fast) + start_workers(
        1, 1, tracking, storage, tmp_path, slow, 1
    )
    assert wait_all(procs, tmp_path) == [0, 0], logs(tmp_path, 2)
    study = optuna.load_study(study_name=tmp_path.name, storage=storage)
    by_worker: dict[str, list] = {}
    for t in study.trials:
        by_worker.setdefault(t.user_attrs["mlproj_worker"], []).append(t)
    (b_trial,) = next(ts for ts in by_worker.values() if len(ts) == 1)
    assert b_trial.state == optuna.trial.TrialState.PRUNED, b_trial.state
    assert max(b_trial.intermediate_values) < 39  # stopped early, not at its last epoch
    (a_trials,) = [ts for ts in by_worker.values() if len(ts) == 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in a_trials)
    assert all(t.datetime_complete < b_trial.datetime_complete for t in a_trials)
