"""Time series (data=timeseries): windows split by time without leakage, scaling on the training part, the
startup checks, MASE on the device, the sequence models, the packaged forecaster; and runs in-process against a
real sqlite store. Small generated series only."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from mlproj import metrics
from mlproj.data.timeseries import TimeSeriesFile
from mlproj.errors import ConfigError, InputError
from mlproj.forecast_metrics import MeanAbsoluteScaledError
from mlproj.models import GRU, MLP, TCN
from mlproj.packaging import pyfunc as packaging
from mlproj.packaging.timeseries import SeriesPredictor
from tests.conftest import QUICK


def monthly(n: int = 96, series: tuple[str, ...] = ("",), seed: int = 0) -> pd.DataFrame:
    """Seasonal monthly series with a trend, a covariate and noise; one block of rows per series id."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, key in enumerate(series):
        t = np.arange(n)
        price = rng.normal(1.0, 0.1, n)
        sales = 10 + 5 * i + 3 * np.sin(2 * np.pi * t / 12) + 0.05 * t - 2 * price + rng.normal(0, 0.2, n)
        frame = pd.DataFrame({"month": pd.date_range("2015-01-01", periods=n, freq="MS"), "sales": sales})
        frame["price"] = price
        if key:
            frame["store"] = key
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    path = tmp_path / "sales.csv"
    monthly().to_csv(path, index=False)
    return path


def source(path: Path, **kw) -> TimeSeriesFile:
    args = {"time": "month", "target": "sales", "horizon": 3, "window": 12, "season": 12, **kw}
    return TimeSeriesFile(path=str(path), **args)


# --- data ---------------------------------------------------------------------------------------------


def test_windows_are_split_by_time_without_leakage(tmp_path):
    path = tmp_path / "index.csv"
    n = 80
    pd.DataFrame({"t": np.arange(n), "y": np.arange(n, dtype=float)}).to_csv(path, index=False)
    data = TimeSeriesFile(
        path=str(path), time="t", target="y", horizon=4, window=10, val_size=8, test_size=12
    ).prepare()
    layout = data.layout
    train_end, val_end = n - 20, n - 12
    assert layout.mean == [pytest.approx(np.arange(train_end).mean())]  # fitted on the training part only
    positions = {}
    for split, (x, y) in data.splits.items():
        inputs = layout.unscale_target(x).round()  # one channel: the flat window is the history itself (float32)
        targets = layout.unscale_target(y).round()
        assert np.allclose(np.diff(inputs, axis=1), 1) and np.allclose(targets[:, 0], inputs[:, -1] + 1)
        positions[split] = targets
    assert positions["train"].max() < train_end  # no training target is a validation or test point
    assert positions["val"].min() >= train_end and positions["val"].max() < val_end
    assert positions["test"].min() >= val_end and positions["test"].max() == n - 1
    assert [len(positions[s]) for s in ("train", "val", "test")] == [train_end - 10 - 4 + 1, 8 - 4 + 1, 12 - 4 + 1]
    # the training windows are all before the boundary, whatever the order they are shuffled in; the splits are
    # in-memory tensors batched on the training device (mlproj's on-device path, as for tables)
    from mlproj.data.batches import TensorBatches

    loaders = TimeSeriesFile(path=str(path), time="t", target="y", horizon=4, window=10).loaders(data, 0, 4)
    assert all(isinstance(loader, TensorBatches) for loader in loaders.values())
    assert not loaders["val"].shuffle and not loaders["test"].shuffle and loaders["train"].shuffle
    assert loaders["train"].chunk == 4 and loaders["val"].chunk == 1


def test_many_series_with_covariates_and_a_shuffled_file(tmp_path):
    frame = monthly(60, series=("a", "b"))
    path = tmp_path / "stores.csv"
    frame.sample(frac=1.0, random_state=0).to_csv(path, index=False)  # rows in any order: sorted by time per series
    data = source(path, covariates=["price"], series_id="store").prepare()
    assert [p.key for p in data.parts] == sorted({p.key for p in data.parts}) or len(data.parts) == 2
    assert data.pre.shape == [12, 2] and data.pre.num_features == 24 and data.pre.num_targets == 3
    per_series = {"train": 60 - 12 - 12 - 3 + 1, "val": 6 - 3 + 1, "test": 6 - 3 + 1}
    assert {s: len(x) for s, (x, _) in data.splits.items()} == {s: 2 * k for s, k in per_series.items()}
    for part in data.parts:
        assert part.rows["month"].is_monotonic_increasing
    train = np.concatenate([p.values[: p.train_end] for p in data.parts])
    assert data.layout.mean == pytest.approx(train.mean(axis=0).tolist())
    # MASE's scale: the seasonal-naive error on the training parts of both series
    diffs = [np.abs(p.values[12 : p.train_end, 0] - p.values[: p.train_end - 12, 0]) for p in data.parts]
    assert data.mase_scale == pytest.approx(np.concatenate(diffs).mean())


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"window": 90}, r"data.window=90 \+ data.horizon=3 need at least 93 training rows"),
        ({"target": "revenue"}, r"data.target='revenue' is not a column of sales.csv; columns: month, sales, price"),
        ({"covariates": ["promo"]}, r"data.covariates='promo' is not a column"),
        ({"series_id": "store"}, r"data.series_id='store' is not a column"),
        ({"test_size": 2}, r"data.test_size=2 must be >= data.horizon=3"),
        ({"val_size": 3}, r"data.val_size=3 gives one val window of data.horizon=3; at least 2 are needed"),
        ({"horizon": 0}, r"data.horizon=0 must be >= 1"),
        ({"season": 90}, r"data.season=90 needs more than 90 training rows"),
        ({"time": "sales"}, r"overlap"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_key(series_csv, kw, message):
    with pytest.raises(ConfigError, match=message):
        source(series_csv, **kw).prepare()


def test_repeated_times_and_missing_values_are_refused(tmp_path):
    frame = monthly(60)
    frame.loc[5, "month"] = frame.loc[4, "month"]
    frame.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ConfigError, match="repeats a time"):
        source(tmp_path / "dup.csv").prepare()
    frame = monthly(60)
    frame.loc[3, "month"] = None
    frame.to_csv(tmp_path / "no_time.csv", index=False)
    with pytest.raises(ConfigError, match=r"data\.time='month' has 1 missing values"):
        source(tmp_path / "no_time.csv").prepare()
    frame = monthly(60)
    frame.loc[7, "sales"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(ConfigError, match=r"missing values in \['sales'\]"):
        source(tmp_path / "gap.csv").prepare()


def test_startup_refuses_a_window_longer_than_the_series_before_any_run(make_cfg, series_csv, store, tmp_path):
    from mlproj.train import run

    cfg = make_cfg(*ts_args(series_csv, store), "data.window=200")
    with pytest.raises(ConfigError, match=r"data\.window=200"):
        run(cfg, [], tmp_path / "out")
    assert not (tmp_path / "mlflow.db").exists()


# --- metrics and models ---------------------------------------------------------------------------------


def test_mase_is_the_mae_over_the_seasonal_naive_scale_accumulated_on_device():
    rng = np.random.default_rng(1)
    preds, target = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    metric = MeanAbsoluteScaledError(scale=0.5)
    for lo in range(0, 50, 16):  # batches, as an epoch updates it
        metric.update(torch.from_numpy(preds[lo : lo + 16]).float(), torch.from_numpy(target[lo : lo + 16]).float())
    assert metric.abs_error.device == torch.device("cpu") and metric.abs_error.dtype == torch.float32
    assert float(metric.compute()) == pytest.approx(np.abs(preds - target).mean() / 0.5, rel=1e-5)
    assert MeanAbsoluteScaledError.higher_is_better is False
    with pytest.raises(ValueError, match="scale"):
        MeanAbsoluteScaledError(scale=0.0)


@pytest.mark.parametrize("cls", [GRU, TCN])
def test_sequence_models_fold_the_flat_window(cls):
    torch.manual_seed(0)
    net = cls(in_features=24 * 2, out_features=5, in_shape=[24, 2]).eval()
    x = torch.randn(3, 48)
    assert net(x).shape == (3, 5)
    changed = x.clone()
    changed[:, 0] += 5.0  # the oldest step of the first channel: inside the receptive field
    assert not torch.allclose(net(changed), net(x))
    with pytest.raises(ValueError, match="in_shape"):
        cls(in_features=48, out_features=5, in_shape=[10, 2])


def test_tcn_convolutions_are_causal():
    from mlproj.models.sequence import _CausalBlock

    block = _CausalBlock(1, 4, kernel_size=3, dilation=2, dropout=0.0).eval()
    x = torch.randn(1, 1, 20)
    later = x.clone()
    later[..., 15:] += 1.0
    assert torch.allclose(block(x)[..., :15], block(later)[..., :15])  # no step sees its future


# --- the packaged forecaster ----------------------------------------------------------------------------


def packaged(path: Path, tmp_path: Path, **kw):
    data = source(path, **kw).prepare()
    layout = data.layout
    net = MLP(data.pre.num_features, layout.horizon, hidden_sizes=[8]).eval()
    sizes = {"in_features": data.pre.num_features, "out_features": layout.horizon}
    recipe = {"family": "model", "node": {"_target_": "mlproj.models.MLP", "hidden_sizes": [8]}, "required": sizes}
    package = packaging.Package(net, recipe, None, "regression", example=data.example, inputs=data.inputs)
    packaging.save(package, tmp_path / "model")
    return data, package


def test_packaged_forecaster_takes_the_history_and_returns_the_next_values(tmp_path):
    frame = monthly(60, series=("a", "b"))
    frame.to_csv(tmp_path / "stores.csv", index=False)
    data, package = packaged(tmp_path / "stores.csv", tmp_path, covariates=["price"], series_id="store")
    meta = json.loads((tmp_path / "model" / packaging.META_FILE).read_text())
    assert meta["inputs"]["kind"] == "series" and meta["inputs"]["window"] == 12 and meta["preprocessing"] is None
    loaded = packaging.load(tmp_path / "model")
    assert isinstance(loaded, SeriesPredictor)
    out = loaded.predict(frame)  # whole histories: the last 12 rows of each series are used
    assert list(out.columns) == ["store", "step", "month", "prediction"]
    assert out["store"].tolist() == ["a"] * 3 + ["b"] * 3 and out["step"].tolist() == [1, 2, 3] * 2
    assert out["month"].iloc[0] == pd.Timestamp("2020-01-01")  # the month after the history's last
    # the same numbers as the network on the window built for training
    last = frame[frame.store == "b"].tail(12)
    x = torch.from_numpy(data.layout.scale(last[["sales", "price"]].to_numpy()).reshape(1, -1))
    expected = data.layout.unscale_target(package.network(x).detach().numpy())[0]
    assert out["prediction"].iloc[3:].to_numpy() == pytest.approx(expected, rel=1e-5)
    pd.testing.assert_frame_equal(package.predictor().predict(frame), out)


def test_packaged_forecaster_refuses_short_or_incomplete_histories(series_csv, tmp_path):
    packaged(series_csv, tmp_path)
    model = packaging.load(tmp_path / "model")
    frame = pd.read_csv(series_csv, parse_dates=["month"])
    with pytest.raises(InputError, match="has 5 rows; the model needs the last 12"):
        model.predict(frame.tail(5))
    with pytest.raises(InputError, match=r"missing columns \['sales'\]"):
        model.predict(frame.drop(columns=["sales"]))
    meta = json.loads((tmp_path / "model" / packaging.META_FILE).read_text())
    for key, value in (("window", "12; import os"), ("std", [0.0]), ("target", {"_target_": "os.system"})):
        damaged = {**meta, "inputs": {**meta["inputs"], key: value}}
        (tmp_path / "model" / packaging.META_FILE).write_text(json.dumps(damaged))
        with pytest.raises(packaging.ModelLoadError, match="damaged series inputs"):
            packaging.load(tmp_path / "model")
    meta["inputs"]["kind"] = "pickle"
    (tmp_path / "model" / packaging.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(packaging.ModelLoadError, match="unknown inputs kind 'pickle'"):
        packaging.load(tmp_path / "model")


# --- runs ----------------------------------------------------------------------------------------------


def ts_args(path: Path, store: str, *extra: str) -> list[str]:
    args = ["data=timeseries", f"data.path='{path}'", "data.time=month", "data.target=sales"]
    args += ["data.horizon=3", "data.window=12", "data.season=12", "data.batch_size=16", f"tracking.uri='{store}'"]
    return [*QUICK, *args, *extra]


@pytest.mark.parametrize("model", ["mlp", "gru", "tcn"])
def test_a_forecasting_run_logs_its_metrics_plot_and_model(make_cfg, series_csv, store, tmp_path, model):
    from mlproj.train import run

    extra = ["data.covariates=[price]", f"model={model}", "++registry.thresholds.val_mase=100"]
    cfg = make_cfg(*ts_args(series_csv, store, *extra))
    result = run(cfg, [], tmp_path / "out")
    client = MlflowClient(store)
    (only,) = client.search_runs([client.get_experiment_by_name("mlproj-sales").experiment_id])
    for stage in ("val", "test"):
        for name in ("mae", "rmse", "mape", "smape", "mase"):
            assert f"{stage}_{name}" in only.data.metrics, (stage, name)
    assert json.loads(only.data.tags["mlproj.metric_directions"]) == {"mape": False, "mase": False, "smape": False}
    assert "plots/forecast.png" in {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert result.extra["registry"].decision == "registered"  # the gate on the family's metric
    forecaster = mlflow.pyfunc.load_model(result.model_uri)
    history = pd.read_csv(series_csv, parse_dates=["month"])
    out = forecaster.predict(history.iloc[:-6])
    assert out["step"].tolist() == [1, 2, 3] and out["prediction"].notna().all()
    # The logged test MAE is the packaged model's own on the test windows (best checkpoint, original units).
    data = source(series_csv, covariates=["price"]).prepare()
    part = data.parts[0]
    errors = [
        np.abs(forecaster.predict(part.rows.iloc[o - 12 : o])["prediction"].to_numpy() - part.values[o : o + 3, 0])
        for o in range(part.val_end, len(part.rows) - 3 + 1)
    ]
    assert np.mean(errors) == pytest.approx(only.data.metrics["test_mae"], rel=1e-4)
    assert np.mean(errors) / data.mase_scale == pytest.approx(only.data.metrics["test_mase"], rel=1e-4)
    # batch predictions from the file as it is (dates as text): the forecast after its last row
    from mlproj.predict import main as predict

    assert predict([result.model_uri, str(series_csv), "-o", str(tmp_path / "next.csv"), "--tracking-uri", store]) == 0
    written = pd.read_csv(tmp_path / "next.csv")
    assert written["month"].tolist() == ["2023-01-01", "2023-02-01", "2023-03-01"] and len(written) == 3


def test_the_forecast_metrics_are_names_the_startup_checks_know(make_cfg, series_csv, store):
    from mlproj.plan import make_plan

    plan = make_plan(make_cfg(*ts_args(series_csv, store, "trainer.monitor=val_mase", "sweep.objective=val_smape")))
    assert metrics.mode("val_mase", plan.metric_task) == "min" and metrics.mode("test_mape", plan.metric_task) == "min"
    with pytest.raises(ConfigError, match="'val_mase' is not a metric of a regression run"):
        make_plan(make_cfg(*QUICK, f"tracking.uri='{store}'", "trainer.monitor=val_mase"))  # a table has no MASE


def test_a_missing_file_is_refused_as_the_source_is_built(tmp_path):
    with pytest.raises(ConfigError, match=r"data.path='.*nope.csv': no such file"):
        source(tmp_path / "nope.csv")
