"""`python -m mlproj.reproduce RUN_ID`: the logged config trained again, a new run with the same metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlproj import tags
from mlproj.reproduce import main
from tests.conftest import train_once


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    folder = tmp_path_factory.mktemp("original")
    store, result, _ = train_once(folder, "model=linear", "seed=7", "trainer.deterministic=true")
    return store, result.run_id


def test_a_seeded_run_reproduced_gives_the_same_metrics(original, capsys) -> None:
    store, run_id = original
    assert main([run_id, "quiet=true", "--tracking-uri", store]) == 0  # quiet: not part of the recipe
    client = MlflowClient(store)
    first = client.get_run(run_id)
    (again,) = [r for r in client.search_runs([first.info.experiment_id]) if r.info.run_id != run_id]
    assert again.info.status == "FINISHED" and again.data.tags[tags.REPRODUCED_FROM] == run_id
    assert again.data.params["seed"] == "7" and again.data.params["quiet"] == "True"
    tested = {k: v for k, v in first.data.metrics.items() if k.startswith("test_")}
    assert tested and {k: again.data.metrics[k] for k in tested} == pytest.approx(tested, rel=1e-6)
    assert again.data.tags[tags.CONFIG_DIGEST] != first.data.tags[tags.CONFIG_DIGEST]  # tagged: its own recipe


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0" * 32], "no logged config"),
        (["RUN", "model=linear"], "model=linear: reproduce changes keys of the logged config, not groups"),
        (["RUN", "trainer.max_epoch=3"], "trainer.max_epoch is not a key of run's config"),
        (["RUN", "trainer.max_epochs=many"], "trainer.max_epochs=many: "),
    ],
)
def test_reproduce_refuses_in_one_line(original, capsys, args: list[str], message: str) -> None:
    store, run_id = original
    capsys.readouterr()  # the module's training, if it ran just now
    before = len(MlflowClient(store).search_runs([MlflowClient(store).get_run(run_id).info.experiment_id]))
    assert main([run_id if a == "RUN" else a for a in args] + ["--tracking-uri", store]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mlproj.reproduce: error: ") and message in err, err
    assert len(MlflowClient(store).search_runs([MlflowClient(store).get_run(run_id).info.experiment_id])) == before


def test_no_store_is_created_for_a_missing_one(tmp_path: Path, capsys) -> None:
    db = tmp_path / "mlflow.db"
    assert main(["0" * 32, "--tracking-uri", f"sqlite:///{db}"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not db.exists()
