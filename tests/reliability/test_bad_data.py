"""Bad data at train and predict time: each case has a defined behaviour and a clear message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlproj.config.schema import TaskKind
from mlproj.data.prepare import prepare, resolve_task
from mlproj.data.preprocess import Preprocessor
from mlproj.data.sources import load_table
from mlproj.errors import ConfigError, InputError
from tests.conftest import houses_frame
from tests.test_data import csv_config


def test_unseen_and_missing_categories_have_their_slots():
    frame = pd.DataFrame({"c": ["a", "b", "a", None, "b", "a"], "n": [1.0, 2, 3, 4, 5, 6]})
    pre = Preprocessor.fit(frame, pd.Series([1.0, 2, 3, 4, 5, 6]), "regression")
    out = pre.transform(pd.DataFrame({"c": ["a", "zzz", None], "n": [np.nan, 2, 3]}))
    city = out[:, 1:]  # slots: a, b, other, missing
    assert city.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert out[0, 0] == pytest.approx((3.5 - 3.5) / np.std([1, 2, 3, 4, 5, 6]))  # NaN -> train median


def test_constant_and_all_missing_columns_are_dropped():
    frame = pd.DataFrame({"k": [1] * 6, "gone": [np.nan] * 6, "s": ["x"] * 6, "n": range(6)})
    pre = Preprocessor.fit(frame, pd.Series(range(6), dtype=float), "regression")
    assert pre.input_columns == ["n"]
    assert pre.dropped == {"k": "constant", "gone": "all values missing", "s": "constant"}


def test_predict_time_input_errors_are_clear():
    frame = pd.DataFrame({"c": ["a", "b"] * 3, "n": [1.0, 2, 3, 4, 5, 6]})
    pre = Preprocessor.fit(frame, pd.Series([0, 1] * 3), "classification")
    with pytest.raises(InputError, match=r"missing columns \['n'\]"):
        pre.transform(pd.DataFrame({"c": ["a"]}))
    with pytest.raises(InputError, match="column 'n' must be numeric; got 'lots'"):
        pre.transform(pd.DataFrame({"c": ["a"], "n": ["lots"]}))
    assert pre.transform(pd.DataFrame({"c": ["a"], "n": ["2.5"]})).shape == (1, 5)  # numeric strings parse


def test_rows_without_target_are_dropped_and_counted(tmp_path):
    frame = houses_frame(100)
    frame.loc[:4, "price"] = np.nan
    path = tmp_path / "gaps.parquet"
    frame.to_parquet(path)
    table = load_table(csv_config(path, "price"))
    assert len(table.target) == 95 and table.dropped_target_rows == 5


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text(""), "could not be read"),
        (lambda p: p.write_text("a,b\n"), "holds no rows"),
        (lambda p: p.write_text("a,b\n1,2\n3,4\n"), "data.target='price' is not a column of bad.csv; columns: a, b"),
        (lambda p: p.write_text("a,price\n1,\n2,\n"), "has no values"),
    ],
)
def test_bad_files_are_named(tmp_path, setup, message):
    path = tmp_path / "bad.csv"
    setup(path)
    with pytest.raises(ConfigError, match=message) as info:
        load_table(csv_config(path, "price"))
    assert "bad.csv" in str(info.value), str(info.value)  # the file is named, with the key that points at it
    assert str(info.value).startswith(("data.path=", "data.target=")), str(info.value)


def test_single_class_and_non_numeric_regression_are_refused(tmp_path):
    frame = houses_frame(50)
    frame["one"] = "only"
    path = tmp_path / "h.csv"
    frame.to_csv(path, index=False)
    cfg = csv_config(path, "one")
    with pytest.raises(ConfigError, match="single class"):
        prepare(load_table(cfg), "classification", cfg)
    cfg = csv_config(path, "segment", task=TaskKind.regression)
    with pytest.raises(ConfigError, match="needs a numeric target"):
        prepare(load_table(cfg), resolve_task(load_table(cfg), cfg), cfg)
