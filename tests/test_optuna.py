"""The project's Optuna 5 sweeper: Hydra's sweep grammar, samplers, pruning, resumable storage."""

from __future__ import annotations

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.mlproj_optuna.optuna_sweeper import distribution
from tests.conftest import run_cli


@pytest.mark.parametrize(
    "line,expected",
    [
        ("a=interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
        ("a=tag(log, interval(1e-4, 1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("a=int(interval(8, 64))", IntDistribution(8, 64)),
        ("a=tag(log, int(interval(8, 512)))", IntDistribution(8, 512, log=True)),
        ("a=choice(32, 64, 128)", CategoricalDistribution([32, 64, 128])),
        ("a=adam,sgd", CategoricalDistribution(["adam", "sgd"])),
        ("a=choice([64],[128,64])", CategoricalDistribution(["[64]", "[128,64]"])),
        ("a=range(1, 5)", IntDistribution(1, 4)),
        ("a=3", None),
    ],
)
def test_sweep_grammar_becomes_optuna_distributions(line, expected):
    (override,) = OverridesParser.create().parse_overrides([line])
    assert distribution(override) == expected


def runs_by_role(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mlproj-diabetes").experiment_id])
    parents = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "parent"]
    trials = [r for r in runs if r.data.tags.get("mlproj.sweep.role") == "trial"]
    return client, parents, trials


SEARCH = [
    "-m",
    "hparams_search=optuna",
    "hydra.sweeper.sampler=random",
    "optimizer.lr=choice(0.00001,0.003)",  # a hopeless and a good learning rate: the pruner has work
    "trainer.max_epochs=8",
    "trainer.early_stopping=false",
    "quiet=true",
    "sweep.storage=sqlite:///optuna.db",
]


@pytest.mark.slow
def test_search_prunes_and_a_resumed_study_continues_under_the_same_parent(tmp_path):
    out = run_cli(*SEARCH, "hydra.sweeper.n_trials=5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    study = optuna.load_study(study_name="mlproj-diabetes", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert len(states) == 5 and optuna.trial.TrialState.PRUNED in states
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # val_rmse
    client, (parent,), trials = runs_by_role(tmp_path)
    assert len(trials) == 5 and {t.info.status for t in trials} == {"FINISHED"}  # pruned is not FAILED
    pruned = [t for t in trials if t.data.tags.get("mlproj.sweep.pruned") == "true"]
    assert len(pruned) == states.count(optuna.trial.TrialState.PRUNED)
    assert all("mlproj.model_uri" not in t.data.tags for t in pruned)  # stopped: no test, no model
    best = study.best_trial
    winner = client.get_run(parent.data.tags["mlproj.sweep.best_run_id"])
    assert winner.info.run_name.startswith(f"trial {best.number} ")
    assert winner.data.metrics["sweep_objective"] == pytest.approx(study.best_value)

    again = run_cli(*SEARCH, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    study = optuna.load_study(study_name="mlproj-diabetes", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len(study.trials) == 7
    _, parents, trials = runs_by_role(tmp_path)
    assert [p.info.run_id for p in parents] == [parent.info.run_id] and parents[0].info.status == "FINISHED"
    assert sorted(int(t.info.run_name.split()[1]) for t in trials) == list(range(7))


@pytest.mark.slow
@pytest.mark.parametrize("sampler,trials,expected", [("grid", 10, 2), ("cmaes", 2, 2), ("tpe", 2, 2)])
def test_samplers(tmp_path, sampler, trials, expected):
    space = "optimizer.lr=choice(0.001,0.01)" if sampler == "grid" else "optimizer.lr=tag(log, interval(1e-3, 1e-1))"
    # The bare sweeper, without the preset's search space: only what the command line sweeps.
    args = ["-m", "hydra/sweeper=mlproj_optuna", f"hydra.sweeper.sampler={sampler}", f"hydra.sweeper.n_trials={trials}"]
    args += [space, "model=linear", "debug=quick", "quiet=true"]
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    _, parents, found = runs_by_role(tmp_path)
    assert len(parents) == 1 and len(found) == expected
    if sampler == "grid":
        assert sorted(t.data.params["optimizer.lr"] for t in found) == ["0.001", "0.01"]


@pytest.mark.slow
def test_unknown_sampler_is_refused(tmp_path):
    out = run_cli("-m", "hparams_search=optuna", "hydra.sweeper.sampler=bayes", "debug=quick", cwd=tmp_path)
    # refused: a config error (exit 2, not any non-zero, a crash included) in one line, and nothing started: no
    # store, no sweep parent run (Hydra opens it in its multirun callbacks before it builds the sweeper), no study
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == ["mlproj: error: hydra.sweeper.sampler='bayes'; choose one of: tpe, random, grid, cmaes"], lines
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert not (tmp_path / "optuna.db").exists()
