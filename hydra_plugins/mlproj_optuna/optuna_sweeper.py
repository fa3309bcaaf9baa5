"""A Hydra Sweeper that searches with Optuna 5: `python -m mlproj -m hparams_search=optuna`.

Written in the project because the published hydra-optuna-sweeper pins optuna<3 and its sqlite storage
breaks with SQLAlchemy 2. It reads the search space in Hydra's sweep grammar (`interval(0, 1)`,
`int(interval(8, 64))`, `tag(log, interval(1e-4, 1e-1))`, `choice(a, b)`, `range(1, 5)`, `a,b,c`) from
`hydra.sweeper.params` and the command line, asks Optuna for trials, launches them through Hydra's launcher
(so `hydra/launcher=joblib` runs them in parallel) and tells Optuna each trial's `sweep.objective` value.
Trials report their val metric every epoch; the pruner stops weak ones (mlproj.sweeps.pruning). Several
commands on one storage (`sweep.storage=postgresql://...`) work on one study together (mlproj.sweeps.study).
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside sys.modules,
# where dataclasses cannot resolve string annotations.
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "hyperband")


@dataclass
class MlprojOptunaSweeperConf:
    _target_: str = "hydra_plugins.mlproj_optuna.optuna_sweeper.MlprojOptunaSweeper"
    sampler: str = "tpe"  # tpe | random | grid | cmaes
    pruner: str = "median"  # none | median | hyperband
    seed: int | None = None
    n_trials: int = 20  # trials this command adds (a resumed study adds as many again)
    n_jobs: int = 1  # trials launched together (run in parallel by a parallel launcher)
    timeout: float | None = None  # seconds: no new batch starts after this
    storage: str | None = None  # None: in memory; sqlite:///optuna.db or postgresql://... to resume/share
    study_name: str = "mlproj"
    params: dict[str, str] = field(default_factory=dict)  # key -> Hydra sweep grammar


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlproj_optuna", node=MlprojOptunaSweeperConf, provider="mlproj"
)


def distribution(override: Override) -> Any:
    """An Optuna distribution for a sweep override; None for a fixed value."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_choice_sweep() or (isinstance(value, RangeSweep) and value.shuffle):
        assert isinstance(value, ChoiceSweep | RangeSweep)
        choices = [_plain(x) for x in override.sweep_iterator(transformer=Transformer.encode)]
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        step = value.step or 1
        if any(isinstance(v, float) for v in (value.start, value.stop, step)):
            # range's stop is exclusive; a float step gives a discrete float grid
            return FloatDistribution(value.start, value.stop - step, step=step)
        return IntDistribution(int(value.start), int(value.stop) - 1, step=int(step))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: this sweep is not supported by the Optuna sweeper")


def _plain(value: Any) -> Any:
    # Optuna stores choices as JSON scalars; lists (hidden_sizes=[64,32]) travel as Hydra strings.
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _grid_sampler_class() -> Any:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler stops the study when the grid is exhausted, which only works inside
        study.optimize; here the sweeper drives ask/tell and stops itself (n_trials is capped at the grid)."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler


def _grid_sampler(grid: dict[str, list[Any]], seed: int | None) -> Any:
    return _grid_sampler_class()(grid, seed=seed)


def _existing_trials(study_name: str, storage: str | None) -> int:
    import optuna

    if storage is None:
        return 0
    try:
        return len(optuna.load_study(study_name=study_name, storage=storage).trials)
    except KeyError:  # a new study
        return 0


class MlprojOptunaSweeper(Sweeper):
    def __init__(self, **kwargs: Any) -> None:
        self.conf = OmegaConf.structured(MlprojOptunaSweeperConf(**{k: v for k, v in kwargs.items()}))
        self.check_config(self.conf)
        self.job_idx = 0

    @staticmethod
    def check_config(node: Any) -> None:
        """Refuse an unknown sampler or pruner (a ConfigError, a ValueError). Also called by mlproj before Hydra
        starts (mlproj.config.families.check_hydra_targets): Hydra runs the multirun callbacks, which open the
        sweep's parent run, before it builds the sweeper."""
        from mlproj.errors import ConfigError

        for key, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
            value = node.get(key, getattr(MlprojOptunaSweeperConf, key))
            if value not in allowed:
                raise ConfigError(f"hydra.sweeper.{key}={value!r}; choose one of: {', '.join(allowed)}")

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        from mlproj.sweeps import pruning
        from mlproj.sweeps.study import WORKER, seed_offset

        parser = OverridesParser.create()
        lines = [f"{k}={v}" for k, v in (self.conf.params or {}).items()] + list(arguments)
        space, fixed = {}, {}
        for override in parser.parse_overrides(lines):
            key = override.get_key_element()
            dist = distribution(override)
            if dist is None:
                fixed[key] = override.get_value_element_as_str()
                space.pop(key, None)
            else:
                space[key] = dist
                fixed.pop(key, None)
        direction = pruning.direction(self.config)
        earlier = _existing_trials(self.conf.study_name, self.conf.storage)
        study = optuna.create_study(
            study_name=self.conf.study_name,
            storage=self.conf.storage,
            # A resumed study must not replay the first run's samples, nor workers started together each
            # other's: offset the seed by its trial count and this worker's ordinal on the study.
            sampler=self._sampler(space, None if self.conf.seed is None else self.conf.seed + earlier + seed_offset()),
            pruner=self._pruner(),
            direction=direction,
            load_if_exists=True,
        )
        pruning.share(study)
        pruning.remember_parent(study)
        done_before = len(study.trials)
        n_trials = self.conf.n_trials
        if self.conf.sampler == "grid":
            n_trials = min(n_trials, math.prod(len(d.choices) for d in space.values()) - done_before)
        log.info(
            "Optuna study %r (%s, %d earlier trials): %s sampler, %s pruner, %s %s, %d trials",
            study.study_name, self.conf.storage or "in memory", done_before, self.conf.sampler, self.conf.pruner,
            direction, pruning.objective_name(self.config), n_trials,
        )  # fmt: skip
        started = time.monotonic()
        while n_trials > 0:
            if self.conf.timeout is not None and time.monotonic() - started > self.conf.timeout:
                log.info("hydra.sweeper.timeout reached: no new trials")
                break
            batch = [study.ask(space) for _ in range(min(self.conf.n_jobs, n_trials))]
            for trial in batch:  # which worker (machine, process) ran it, when several share the study
                trial.set_user_attr("mlproj_worker", WORKER)
            overrides = [
                (*(f"{k}={_format(v)}" for k, v in {**t.params, **fixed}.items()), f"++sweep.trial={t.number}")
                for t in batch
            ]
            try:
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            except BaseException:
                # SIGTERM or Ctrl-C inside a trial (SystemExit from the job), or the launcher failing: the
                # batch's trials must not stay RUNNING in a study that other workers go on with.
                for trial in batch:
                    try:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    except Exception as exc:  # the storage gone too: the original error matters more
                        log.warning("could not mark trial %d FAILED: %s", trial.number, exc)
                raise
            self.job_idx += len(returns)
            for trial, ret in zip(batch, returns, strict=True):
                self._tell(study, trial, ret)
            n_trials -= len(batch)
        if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            log.info("best trial %d: %s=%s %s", study.best_trial.number, pruning.objective_name(self.config),
                     study.best_value, study.best_params)  # fmt: skip

    def _tell(self, study: Any, trial: Any, ret: Any) -> None:
        import optuna

        from mlproj.sweeps import pruning

        try:
            value = ret.return_value
        except Exception as exc:  # the job raised (fail_fast): a failed trial
            log.warning("trial %d failed: %s", trial.number, exc)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        if value == pruning.PRUNED:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif isinstance(value, int | float) and not math.isnan(value):
            study.tell(trial, float(value))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _sampler(self, space: dict[str, Any], seed: int | None) -> Any:
        import optuna

        if self.conf.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.conf.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        if self.conf.sampler == "grid":
            grid = {}
            for key, dist in space.items():
                if not isinstance(dist, optuna.distributions.CategoricalDistribution):
                    raise ValueError(f"{key}: the grid sampler needs choices (a,b or choice(...)), not an interval")
                grid[key] = list(dist.choices)
            return _grid_sampler(grid, seed)
        return optuna.samplers.TPESampler(seed=seed)

    def _pruner(self) -> Any:
        import optuna

        if self.conf.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
        if self.conf.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner()
        return optuna.pruners.NopPruner()
