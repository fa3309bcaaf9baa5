"""Sources, the train/val/test split, and fitted preprocessing with a JSON state."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from mlproj.data.prepare import prepare, resolve_task
from mlproj.data.preprocess import Preprocessor, infer_task
from mlproj.data.sources import SklearnDataset, SyntheticTable, TableFile, load_table
from mlproj.errors import ConfigError


def csv_config(path, target, **kw) -> TableFile:
    return TableFile(path=str(path), target=target, **kw)


@pytest.mark.parametrize(
    "source,task,rows,classes",
    [
        ("diabetes", "regression", 442, 0),
        ("breast_cancer", "classification", 569, 2),
        ("wine", "classification", 178, 3),
        ("digits", "classification", 1797, 10),
    ],
)
def test_bundled_sets(source, task, rows, classes):
    cfg = SklearnDataset(name=source)
    table = load_table(cfg)
    assert len(table.features) == rows
    data = prepare(table, resolve_task(table, cfg), cfg)
    assert data.task == task and data.num_classes == classes
    sizes = {k: len(s.y) for k, s in data.splits.items()}
    assert sum(sizes.values()) == rows
    assert sizes["val"] == pytest.approx(0.15 * rows, abs=2) and sizes["test"] == pytest.approx(0.15 * rows, abs=2)


def test_synthetic_is_configurable():
    cfg = SyntheticTable(rows=300, features=7, task="classification", classes=3)
    table = load_table(cfg)
    assert table.features.shape == (300, 7)
    data = prepare(table, resolve_task(table, cfg), cfg)
    assert data.task == "classification" and data.num_classes == 3 and data.pre.num_outputs == 3


def test_split_is_reproducible_and_stratified(houses_csv):
    cfg = csv_config(houses_csv, "segment")
    table = load_table(cfg)
    a = prepare(table, "classification", cfg)
    b = prepare(load_table(cfg), "classification", cfg)
    assert a.splits["test"].raw.equals(b.splits["test"].raw)
    overall = table.target.value_counts(normalize=True)
    for name, split in a.splits.items():  # every class in each split, in the overall proportion to a row
        counts = split.raw_target.value_counts()
        assert set(counts.index) == set(overall.index), name
        expected = overall * len(split.raw_target)
        assert ((counts - expected).abs() <= 1).all(), (name, counts.to_dict(), expected.to_dict())
    c = prepare(load_table(cfg), "classification", dataclasses.replace(cfg, split_seed=7))
    assert not a.splits["test"].raw.equals(c.splits["test"].raw)


def test_preprocessing_is_fitted_on_the_training_split_only(houses_csv):
    cfg = csv_config(houses_csv, "price", exclude=["segment"])
    data = prepare(load_table(cfg), "regression", cfg)
    area = next(c for c in data.pre.numeric if c.name == "area")
    train_area = data.splits["train"].raw["area"]
    assert area.mean == pytest.approx(train_area.mean()) and area.fill == pytest.approx(train_area.median())
    assert data.pre.target_mean == pytest.approx(data.splits["train"].raw_target.mean())
    # standardised on train: mean 0, std 1 there, not exactly elsewhere
    x = data.splits["train"].x[:, 0]
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.1


def test_columns_by_kind_and_id_like_column_dropped(houses_csv, caplog):
    cfg = csv_config(houses_csv, "price", exclude=["segment"])
    with caplog.at_level("WARNING"):
        data = prepare(load_table(cfg), "regression", cfg)
    pre = data.pre
    assert [c.name for c in pre.numeric] == ["area", "rooms"]
    assert [c.name for c in pre.categorical] == ["city", "heating"]
    assert "house_id" in pre.dropped and "ID-like" in pre.dropped["house_id"]
    assert "house_id" in caplog.text
    # 2 numeric + city (3 values + other + missing) + heating (3 + 2)
    assert pre.num_features == 2 + 5 + 5 == data.splits["train"].x.shape[1]
    assert data.splits["train"].x.dtype == np.float32 and not np.isnan(data.splits["train"].x).any()


def test_rare_categories_fold_into_other():
    frame = pd.DataFrame({"c": list("aaaabbbcd"), "n": range(9)})
    pre = Preprocessor.fit(frame, pd.Series(range(9), dtype=float), "regression", max_categories=2)
    assert pre.categorical[0].categories == ["a", "b"]


def test_state_is_plain_json_and_round_trips(houses_csv):
    cfg = csv_config(houses_csv, "segment", exclude=["price"])
    data = prepare(load_table(cfg), "classification", cfg)
    state = json.loads(json.dumps(data.pre.to_dict()))
    again = Preprocessor.from_dict(state)
    raw = data.splits["test"].raw
    assert np.array_equal(again.transform(raw), data.pre.transform(raw))
    assert again.labels == ["premium", "standard"]


@pytest.mark.parametrize(
    "values,task",
    [
        ([1.5, 2.25, 3.0, 4.1], "regression"),
        ([0, 1, 1, 0], "classification"),
        ([0.0, 1.0, 2.0, 1.0], "classification"),
        (["yes", "no", "no", "yes"], "classification"),
        ([True, False, True, False], "classification"),
        (list(range(100)), "regression"),
    ],
)
def test_task_inference(values, task):
    assert infer_task(pd.Series(values)) == task


def test_explicit_task_wins(houses_csv):
    cfg = csv_config(houses_csv, "rooms", task="regression")
    assert resolve_task(load_table(cfg), cfg) == "regression"
    cfg = csv_config(houses_csv, "rooms")
    assert resolve_task(load_table(cfg), cfg) == "classification"  # 6 integer values


def test_include_exclude(houses_csv):
    table = load_table(csv_config(houses_csv, "price", include=["area", "city"]))
    assert list(table.features.columns) == ["area", "city"]
    with pytest.raises(ConfigError, match=r"data.exclude names unknown columns \['nope'\]"):
        load_table(csv_config(houses_csv, "price", exclude=["nope"]))


def test_an_id_column_is_not_a_class_label(houses_csv):
    cfg = csv_config(houses_csv, "house_id")
    table = load_table(cfg)
    with pytest.raises(ConfigError, match="has 400 distinct values in 400 rows: an identifier"):
        prepare(table, resolve_task(table, cfg), cfg)


def test_the_shared_table_keys_in_conf_are_the_sources_defaults():
    """conf/data/common/table.yaml spells out TableSource's keys (so `data.val_fraction=0.2` works on every table):
    the same keys, the same defaults."""
    from omegaconf import OmegaConf

    from mlproj.config.schema import config_dir
    from mlproj.data.sources import TableSource

    yaml = OmegaConf.to_container(OmegaConf.load(f"{config_dir()}/data/common/table.yaml"))
    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(TableSource)
        if f.name != "target"  # set by the options that need one (csv, parquet_stream)
    }
    assert yaml == defaults
