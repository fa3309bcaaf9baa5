"""Metric-logging throughput through `mlproj.server`, sqlite vs PostgreSQL backend.

    python scripts/server_benchmark.py --backend sqlite
    python scripts/server_benchmark.py --backend postgresql            # a throwaway local cluster (tests/postgres.py)
    python scripts/server_benchmark.py --backend-store-uri postgresql://user:pw@host:5432/mlflow

Starts the server (loopback, proxied artifacts) on the store, then `--processes` client processes at once (as
that many training processes would), each with its own run, sending `--batches` batches of `--metrics` metrics
with `MlflowClient.log_batch`, which is what mlproj's RunLogger sends per epoch (or per `log_every_n_steps`).
The clients only log: what is measured is the server and its store, not the training beside it. Prints one
Markdown table row: metrics/s over all processes (wall clock from the first batch to the last), and the
p50/p95/max latency of one logged batch.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def client_process(url: str, experiment_id: str, batches: int, metrics: int, start: float, out: object) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    run_id = client.create_run(experiment_id).info.run_id
    while time.time() < start:  # every process begins together
        time.sleep(0.005)
    latencies, first = [], time.time()
    for step in range(batches):
        now = int(time.time() * 1000)
        batch = [Metric(f"m{i}", float(step * i), now, step) for i in range(metrics)]
        t0 = time.perf_counter()
        client.log_batch(run_id, metrics=batch, synchronous=True)
        latencies.append(time.perf_counter() - t0)
    client.set_terminated(run_id)
    out.put((first, time.time(), latencies))


def start_server(store: str, root: Path, port: int, workers: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mlproj.server", "--port", str(port), "--backend-store-uri", store]
    command += ["--artifacts-destination", str(root / "artifacts"), "--workers", str(workers)]
    log = (root / "server.log").open("w")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read() == b"OK":
                return proc
        except OSError:
            time.sleep(0.25)
        if proc.poll() is not None:
            break
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("the server did not start:\n" + (root / "server.log").read_text()[-2000:])


def measure(store: str, args: argparse.Namespace, root: Path) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from mlflow.tracking import MlflowClient

    from tests.conftest import free_port

    port = free_port()
    server = start_server(store, root, port, args.workers)
    try:
        url = f"http://127.0.0.1:{port}"
        experiment_id = MlflowClient(url).create_experiment(f"bench-{time.time_ns()}")
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        start = time.time() + 15  # time for the spawned interpreters to import mlflow
        procs = [
            ctx.Process(target=client_process, args=(url, experiment_id, args.batches, args.metrics, start, out))
            for _ in range(args.processes)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=1800) for _ in procs]
        for p in procs:
            p.join(60)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # mlflow server and its workers (a SIGKILL would orphan them)
        server.wait(60)
    latencies = sorted(x for _, _, lat in results for x in lat)
    wall = max(end for _, end, _ in results) - min(first for first, _, _ in results)
    total = args.processes * args.batches * args.metrics
    return {
        "metrics_per_s": total / wall,
        "batches_per_s": args.processes * args.batches / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
        "wall_s": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--backend-store-uri", help="an existing store instead of a fresh one")
    p.add_argument("--processes", type=int, default=8)
    p.add_argument("--batches", type=int, default=100, help="log_batch calls per process")
    p.add_argument("--metrics", type=int, default=20, help="metrics per batch")
    p.add_argument("--workers", type=int, default=1, help="the server's worker processes")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlproj-bench-"))
    cluster = None
    try:
        store = args.backend_store_uri
        if store is None and args.backend == "postgresql":
            sys.path.insert(0, str(ROOT))
            from tests.conftest import free_port
            from tests.postgres import Cluster

            cluster = Cluster(free_port()).start()
            store = cluster.database("mlflow")
        store = store or f"sqlite:///{root / 'mlflow.db'}"
        result = measure(store, args, root)
    finally:
        if cluster is not None:
            cluster.stop()
    backend = store.split(":", 1)[0]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # a shared machine: what else was running
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPUs, load {load}"
    )
    print(
        "| backend | server workers | processes x batches x metrics | metrics/s | batches/s | p50 ms | p95 ms | max ms |"
    )
    print(
        f"| {backend} | {args.workers} | {args.processes} x {args.batches} x {args.metrics} | "
        f"{result['metrics_per_s']:.0f} | {result['batches_per_s']:.1f} | {result['p50_ms']:.0f} | "
        f"{result['p95_ms']:.0f} | {result['max_ms']:.0f} |"
    )


if __name__ == "__main__":
    main()
