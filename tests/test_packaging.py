"""The packaged model: no pickles, self-contained, and clear errors for damaged artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from mlproj.data.preprocess import Preprocessor
from mlproj.models import MLP
from mlproj.packaging import pyfunc as packaging
from tests.conftest import houses_frame, table_package

REPO = Path(__file__).resolve().parents[1]


def small_model(tmp_path: Path) -> tuple[Path, pd.DataFrame, packaging.TabularPredictor]:
    frame = houses_frame(60)
    raw, target = frame.drop(columns=["price", "segment"]), frame["price"]
    pre = Preprocessor.fit(raw, target, "regression")
    net = MLP(pre.num_features, 1, hidden_sizes=[8])
    path = tmp_path / "model"
    packaging.save(table_package(net, {"_target_": "mlproj.models.MLP", "hidden_sizes": [8]}, pre, raw), path)
    return path, raw, packaging.TabularPredictor(net, pre)


def test_save_load_round_trip_is_exact(tmp_path):
    path, raw, original = small_model(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["mlproj.json", "model.safetensors"]
    json.loads((path / "mlproj.json").read_text())  # plain JSON
    loaded = packaging.load(path)
    # Exact: the same bits, not "close" (assert_frame_equal alone allows a relative 1e-5).
    pd.testing.assert_frame_equal(loaded.predict(raw), original.predict(raw), check_exact=True)
    saved, again = original.network.state_dict(), loaded.network.state_dict()
    assert list(again) == list(saved)
    assert all(again[k].dtype == saved[k].dtype and torch.equal(again[k], saved[k]) for k in saved)
    assert loaded.pre.to_dict() == original.pre.to_dict()


def test_schema_is_the_training_tables_own(tmp_path):
    frame = houses_frame(60)
    raw = frame.drop(columns=["price", "segment"])
    pre = Preprocessor.fit(raw, frame["price"], "regression")
    predictor = packaging.TabularPredictor(MLP(pre.num_features, 1, hidden_sizes=[4]), pre)
    sig = packaging.signature(packaging.input_example(pre, raw), predictor)
    types = {c.name: c.type.name for c in sig.inputs.inputs}
    assert types == {"area": "double", "rooms": "long", "city": "string", "heating": "string"}
    assert [c.name for c in sig.outputs.inputs] == ["prediction"]
