"""Table hygiene (mlproj.data.hygiene): row-index columns, stray strings in numbers, dropped target rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlproj.data.prepare import prepare
from mlproj.data.sources import TableFile, load_table
from mlproj.errors import InputError
from tests.conftest import houses_frame


def _csv(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    return path


def _prepare(path, **kw):
    cfg = TableFile(path=str(path), target="price", exclude=["segment"], **kw)
    return prepare(load_table(cfg), "regression", cfg)


def test_an_index_column_is_dropped_with_the_key_to_keep_it(tmp_path, caplog):
    frame = houses_frame().sort_values("price").reset_index(drop=True)  # rows in blocks sorted by the target
    frame.insert(0, "rownames", np.arange(1, len(frame) + 1))
    frame.insert(1, "order", np.arange(len(frame)) * 3 + 7)  # unique, monotone over the file, not a range
    path = _csv(tmp_path, frame)
    with caplog.at_level("WARNING"):
        data = _prepare(path)
    assert "row index" in data.pre.dropped["rownames"] and "row index" in data.pre.dropped["order"]
    assert "rownames" not in data.pre.input_columns and "rooms" in data.pre.input_columns  # few values: a feature
    assert "'rownames'" in caplog.text and "data.drop_index_columns=false keeps it" in caplog.text
    kept = _prepare(path, drop_index_columns=False)
    assert {"rownames", "order"} <= set(kept.pre.input_columns)
    named = _prepare(path, include=["rownames", "area"])  # a column the user names is kept
    assert named.pre.input_columns == ["rownames", "area"]


def test_a_few_non_numeric_cells_become_missing_or_are_refused(tmp_path, caplog):
    frame = houses_frame()
    frame["area"] = frame["area"].astype(object)
    frame.loc[[3, 9], "area"] = ["abc", "n/a?"]
    path = _csv(tmp_path, frame)
    with caplog.at_level("WARNING"):
        data = _prepare(path)
    assert "area" in [c.name for c in data.pre.numeric]
    assert "'area': 2 non-numeric cells read as missing (e.g. 'abc', 'n/a?')" in caplog.text
    assert "area" not in data.pre.dropped
    with pytest.raises(InputError, match=r"column 'area' is numeric but 2 cells are not numbers"):
        _prepare(path, strict=True)
    # at predict time a stray cell is an error naming the column (the README's rule for new rows)
    with pytest.raises(InputError, match=r"column 'area' must be numeric; got 'abc'"):
        data.pre.transform(frame.head(5))


def test_a_text_column_stays_text(tmp_path):
    frame = houses_frame()
    frame["city"] = frame["city"].fillna("10")  # a few numbers among words: still text
    data = _prepare(_csv(tmp_path, frame))
    assert "city" in [c.name for c in data.pre.categorical]


def test_rows_dropped_for_a_missing_target_are_printed(tmp_path, store, capsys):
    from tests.conftest import run_main

    frame = houses_frame()
    frame.loc[[1, 2, 3], "price"] = np.nan
    path = _csv(tmp_path, frame)
    code = run_main(
        "data=csv", f"data.path={path}", "data.target=price", "data.exclude=[segment]", f"tracking.uri={store}",
        "trainer.max_epochs=1", "tracking.log_plots=false",
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr()
    assert "3 rows dropped: their target 'price' is missing" in out.out + out.err
