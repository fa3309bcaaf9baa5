"""Tabular nets (model=resnet_mlp, model=ft_transformer): categorical embeddings over the preprocessing's
one-hot blocks, periodic numeric embeddings, one tiny run each through the packaged pyfunc model."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score

from mlproj.config.checks import check_config
from mlproj.data.bins import quantile_edges
from mlproj.data.prepare import prepare
from mlproj.data.preprocess import Preprocessor
from mlproj.data.sources import load_table
from mlproj.models import FTTransformer, ResNetMLP
from mlproj.models.embeddings import CategoryEmbedding, PiecewiseLinearEmbedding
from mlproj.plan import make_plan, model_sizes
from tests.conftest import houses_frame, train_once


def fitted(rows: int = 60) -> tuple[Preprocessor, pd.DataFrame]:
    frame = houses_frame(rows)
    raw = frame.drop(columns=["price", "segment", "house_id"])
    return Preprocessor.fit(raw, frame["price"], "regression"), raw


def test_preprocessing_exposes_category_indices_that_match_its_one_hot_blocks():
    pre, raw = fitted()
    assert pre.cardinalities == [len(c.categories) + 2 for c in pre.categorical] and len(pre.cardinalities) == 2
    codes = pre.category_indices(raw)
    onehot = pre.transform(raw)[:, len(pre.numeric) :]
    blocks = np.split(onehot, np.cumsum(pre.cardinalities)[:-1], axis=1)
    assert all((block.argmax(1) == codes[:, j]).all() for j, block in enumerate(blocks))
    city = [c.name for c in pre.categorical].index("city")
    missing = raw["city"].isna().to_numpy()
    assert (codes[missing, city] == pre.cardinalities[city] - 1).all()  # a gap: the "missing" slot
    unseen = pre.category_indices(raw.head(1).assign(city="rome"))
    assert unseen[0, city] == pre.cardinalities[city] - 2  # unseen: the "other" slot


def test_a_category_is_its_own_embedding_row_whatever_the_other_columns():
    embed = CategoryEmbedding([3, 2], dim=4)
    onehot = torch.tensor([[0, 1, 0, 1, 0], [0, 1, 0, 0, 1]], dtype=torch.float32)
    out = embed(onehot)
    assert out.shape == (2, 2, 4)
    assert torch.equal(out[0, 0], out[1, 0]) and not torch.equal(out[0, 1], out[1, 1])
    assert torch.allclose(out[0, 0], embed.table.weight[1] + embed.bias[0])
    assert torch.allclose(out[1, 1], embed.table.weight[3 + 1] + embed.bias[1])  # second column: offset 3


@pytest.mark.parametrize("model", ["resnet_mlp", "ft_transformer"])
def test_model_composes_validates_and_gets_the_tables_categories(make_cfg, tmp_path, model):
    csv = tmp_path / "houses.csv"
    houses_frame(80).to_csv(csv, index=False)
    data = ["data=csv", f"data.path='{csv}'", "data.target=price", "data.exclude=[segment]"]
    cfg = make_cfg(f"model={model}", *data, "model.numeric_embedding=periodic")
    check_config(cfg)
    plan = make_plan(cfg)
    sizes = model_sizes(plan, None, cfg)
    assert sizes["categories"] == plan.pre.cardinalities and len(sizes["categories"]) == 2
    assert sizes["in_features"] == len(plan.pre.numeric) + sum(sizes["categories"])
    numeric = plan.prepared.splits["train"].x[:, : len(plan.pre.numeric)]
    assert sizes["bins"] == quantile_edges(numeric) and len(sizes["bins"]) == 2


@pytest.mark.parametrize(
    ("model", "overrides"),
    [
        ("resnet_mlp", ["model.numeric_embedding=periodic", "model.width=16"]),
        ("ft_transformer", ["model.d_token=8", "model.numeric_embedding=piecewise"]),
    ],
)
def test_model_trains_and_round_trips_through_the_packaged_pyfunc(tmp_path, model, overrides):
    csv = tmp_path / "houses.csv"
    houses_frame(120).to_csv(csv, index=False)
    data = ["data=csv", f"data.path='{csv}'", "data.target=segment", "data.exclude=[price]"]
    store, result, cfg = train_once(tmp_path, f"model={model}", *data, *overrides, "trainer.max_epochs=1")
    assert result.task == "classification" and "test_accuracy" in result.metrics
    mlflow.set_tracking_uri(store)
    local = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "model")))
    meta = json.loads(next(local.rglob("mlproj.json")).read_text())
    categories = meta["required"]["categories"]
    assert categories == Preprocessor.from_dict(meta["preprocessing"]).cardinalities and len(categories) == 2
    assert len(meta["required"]["bins"]) == 2  # area, rooms: their quantile edges travel in the recipe
    raw = pd.read_csv(csv).head(30)
    loaded = mlflow.pyfunc.load_model(result.model_uri)
    out = loaded.predict(raw, params={"probabilities": True})
    assert set(out["prediction"]) <= {"premium", "standard"} and len(out) == 30
    # The packaged model is the tested one: it reproduces the logged test accuracy from the raw test rows.
    test = prepare(load_table(cfg.data), "classification", cfg.data).splits["test"]
    accuracy = accuracy_score(test.raw_target, loaded.predict(test.raw)["prediction"])
    assert accuracy == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)
    again = loaded.predict(raw.assign(city=raw["city"].where(raw.index % 2 == 0, "atlantis")))
    assert len(again) == 30  # an unseen category takes the "other" slot, no error


def test_networks_refuse_sizes_that_do_not_fit():
    with pytest.raises(ValueError, match="categories"):
        ResNetMLP(4, 1, categories=[3, 3])
    with pytest.raises(ValueError, match="multiple of heads"):
        FTTransformer(4, 1, d_token=10, heads=4)


def test_resnet_mlp_trains_on_a_one_row_batch():
    """An epoch's last batch may hold one row (rows % batch_size == 1): batch norm must not fail on it."""
    net = ResNetMLP(5, 1, categories=[3], width=8).train()
    x = torch.tensor([[0.5, -1.0, 0.0, 1.0, 0.0]])
    net(x).sum().backward()
    assert net.first.weight.grad is not None


def test_piecewise_linear_encoding_of_quantile_bins():
    embed = PiecewiseLinearEmbedding([[0.0, 1.0, 3.0], [0.0, 2.0]], dim=4)  # 2 bins, then 1 (padded)
    x = torch.tensor([[0.5, 1.0], [2.0, -2.0], [-1.0, 4.0], [5.0, 0.0]])
    expected = [
        [[0.5, 0.0], [0.5, 0.0]],
        [[1.0, 0.5], [-1.0, 0.0]],  # below the first edge: the first bin goes negative
        [[-1.0, 0.0], [2.0, 0.0]],  # above the last edge: the last bin goes past 1
        [[1.0, 2.0], [0.0, 0.0]],
    ]
    assert torch.allclose(embed.encode(x), torch.tensor(expected))
    assert embed(x).shape == (4, 2, 4) and not any("left" in k for k in embed.state_dict())
    assert quantile_edges(np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]), bins=2) == [
        [0.0, 1.5, 3.0],
        [4.0, 6.0],  # a constant column: one bin around it
    ]


def test_sizes_from_the_table_are_refused_in_the_config_before_any_store(make_cfg, tmp_path):
    from mlproj.errors import ConfigError

    db = tmp_path / "mlflow.db"
    cfg = make_cfg("model=resnet_mlp", "+model.categories=[3]", f"tracking.uri='sqlite:///{db}'")
    with pytest.raises(ConfigError, match=r"model\.categories is set by mlproj"):
        make_plan(cfg)
    assert not db.exists()
