"""mlproj.startup: a command starts with the cyclic garbage collector paused, and trains with it running.

The speed itself is measured by scripts/profile_run.py (benchmarks/2026-11-30-startup-gc.md), not timed here."""

from __future__ import annotations

import dataclasses
import gc
from typing import ClassVar

import pytest
from pytorch_lightning import Callback

from mlproj import startup
from mlproj.data.sources import SklearnDataset
from tests.conftest import QUICK, run_main


@pytest.fixture(autouse=True)
def _collector_restored():
    """Whatever a test does to the collector, the rest of the suite gets it back as it was."""
    yield
    gc.unfreeze()
    gc.enable()
    startup._active = startup._paused = False


class CollectorProbe(Callback):
    """A plain Lightning callback, named by `_target_`: records whether the collector runs while training."""

    seen: list[bool] = []

    def on_train_start(self, trainer, pl_module) -> None:
        CollectorProbe.seen.append(gc.isenabled())


@dataclasses.dataclass
class ProbedDiabetes(SklearnDataset):
    """The built-in diabetes source, as a data source of yours would extend it: records whether the collector
    runs while the data is prepared."""

    seen: ClassVar[list[bool]] = []

    def prepare(self):
        ProbedDiabetes.seen.append(gc.isenabled())
        return super().prepare()


def test_paused_until_started_then_frozen_and_running() -> None:
    with startup.quick_start():
        assert not gc.isenabled()
        before = gc.get_freeze_count()
        startup.started()
        assert gc.isenabled()
        assert gc.get_freeze_count() > before  # what the imports left is out of the collector's sight
        frozen = gc.get_freeze_count()
        [object() for _ in range(10)]
        startup.started()  # once only: a sweep's later trials (their data, models) are never frozen
        assert gc.get_freeze_count() == frozen
        assert gc.isenabled()
    assert gc.isenabled()


def test_a_command_that_ends_before_training_restores_the_collector_without_freezing() -> None:
    with pytest.raises(SystemExit), startup.quick_start():
        raise SystemExit(2)  # a refused config, --help
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_caller_that_manages_the_collector_is_left_alone() -> None:
    gc.disable()
    with startup.quick_start():
        startup.started()
        assert not gc.isenabled()
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_a_run_prepares_its_data_and_trains_with_the_collector_running(store: str) -> None:
    CollectorProbe.seen.clear()
    ProbedDiabetes.seen.clear()
    with startup.quick_start():
        code = run_main(
            *QUICK,
            f"tracking.uri='{store}'",
            "quiet=true",
            "tracking.log_model=false",
            f"data._target_={__name__}.ProbedDiabetes",
            f"+callbacks.probe._target_={__name__}.CollectorProbe",
        )
    assert code == 0
    assert ProbedDiabetes.seen and all(ProbedDiabetes.seen)
    assert CollectorProbe.seen == [True]
    assert gc.isenabled()
