"""Text tables (data=text_csv) and their networks: the tokenizer's data, the split, runs, the packaged model."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from mlproj.data.text import UNKNOWN, TextFile, TextPreprocessor, Vocabulary, split_words
from mlproj.errors import ConfigError
from mlproj.models.text import EmbeddingBag, TextTransformer
from mlproj.packaging import pyfunc
from mlproj.train import run
from tests.conftest import QUICK
from tests.texts import reviews_frame


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    reviews_frame(300).to_csv(path, index=False)
    return path


def text_overrides(store: str, csv: Path, target: str = "sentiment", model: str = "embedding_bag") -> list[str]:
    return [
        *QUICK,
        f"tracking.uri='{store}'",
        "data=text_csv",
        f"data.path='{csv}'",
        "data.text_column=review",
        f"data.target={target}",
        f"model={model}",
    ]


def test_vocabulary_comes_from_the_training_split_only_and_is_plain_json(tmp_path):
    frame = reviews_frame(200)
    frame["review"] = [f"{text} word{i}" for i, text in enumerate(frame["review"])]  # one word per row
    frame.to_csv(tmp_path / "r.csv", index=False)
    source = TextFile(path=str(tmp_path / "r.csv"), text_column="review", target="sentiment")
    prepared = source.prepare()
    pre = prepared.pre
    assert isinstance(pre, TextPreprocessor) and prepared.task == "classification"
    seen = {w for t in prepared.splits["train"].raw["review"] for w in split_words(t, True)}
    assert set(pre.vocab.tokens) == seen  # every training token, nothing from val or test
    test_text = prepared.splits["test"].raw["review"].iloc[0]
    assert pre.vocab.index.get(test_text.split()[-1].lower()) is None  # its own word: never seen in training
    assert prepared.splits["test"].x[0][len(split_words(test_text, True)) - 1] == UNKNOWN
    assert prepared.splits["train"].x.dtype == np.int64 and pre.num_features == len(seen) + 2

    state = json.loads(json.dumps(pre.inputs()))  # JSON through and through: no objects, no code
    again = TextPreprocessor.from_inputs(state, pre.task, pre.labels)
    raw = prepared.splits["val"].raw
    assert np.array_equal(again.transform(raw), pre.transform(raw))


def test_split_is_reproducible_and_stratified(reviews_csv):
    def split(seed: int) -> dict:
        prepared = TextFile(path=str(reviews_csv), text_column="review", target="sentiment", split_seed=seed).prepare()
        return {name: s.raw_target for name, s in prepared.splits.items()}

    first, again, other = split(1), split(1), split(2)
    assert all(first[k].equals(again[k]) for k in first)
    assert not first["test"].equals(other["test"])
    overall = pd.concat(first.values()).value_counts(normalize=True)
    for part in first.values():  # stratified: each split keeps the class balance
        assert (part.value_counts(normalize=True) - overall).abs().max() < 0.05


def test_tokens_are_words_and_punctuation_and_texts_are_cut_to_max_length(tmp_path):
    assert split_words("Great film!! Loved it, 10/10", True) == [
        "great",
        "film",
        "!",
        "!",
        "loved",
        "it",
        ",",
        "10",
        "/",
        "10",
    ]
    vocab = Vocabulary.fit(pd.Series(["a b c", "a b", "a", None]), max_vocab=2, min_count=1, lowercase=True)
    assert vocab.tokens == ["a", "b"]  # by frequency; the rest is unknown
    assert vocab.encode(pd.Series(["c a b a", None]), 3).tolist() == [[UNKNOWN, 2, 3], [0, 0, 0]]


@pytest.mark.parametrize("network", [EmbeddingBag(50, 3), TextTransformer(50, 3, d_model=16, heads=2)])
def test_text_networks_take_padded_token_ids(network):
    torch.manual_seed(0)
    x = torch.tensor([[5, 6, 7, 0, 0], [9, 0, 0, 0, 0], [0, 0, 0, 0, 0]])  # an empty text too
    network.eval()
    out = network(x)
    assert out.shape == (3, 3) and torch.isfinite(out).all()
    wider = torch.cat([x, torch.zeros(3, 4, dtype=torch.long)], dim=1)  # more padding changes nothing
    assert torch.allclose(network(wider), out, atol=1e-5)


def test_classification_run_gate_and_packaged_model(make_cfg, store, reviews_csv, tmp_path):
    overrides = [*text_overrides(store, reviews_csv), "trainer.max_epochs=4", "optimizer.lr=0.02"]
    cfg = make_cfg(*overrides, "++registry.thresholds.test_accuracy=0.01", "registry.model_name=reviews")
    result = run(cfg, [], tmp_path / "out")
    client = MlflowClient(store)
    (only,) = client.search_runs([client.get_experiment_by_name("mlproj-reviews").experiment_id])
    assert only.info.status == "FINISHED" and only.data.tags["mlproj.task"] == "classification"
    assert {"test_accuracy", "test_f1", "test_auroc", "val_accuracy"} <= set(only.data.metrics)
    assert only.data.params["data._target_"] == "mlproj.data.text.TextFile"
    assert only.data.tags["mlproj.registry.decision"] == "registered"  # the gate on the family's metrics
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert "plots/confusion_matrix.png" in plots

    local = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "dl")))
    files = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt", ".pth", ".ckpt"))], files
    (meta_file,) = local.rglob("mlproj.json")
    inputs = json.loads(meta_file.read_text())["inputs"]
    assert inputs["kind"] == "text" and inputs["column"] == "review" and inputs["tokenizer"]["tokens"]

    model = mlflow.pyfunc.load_model(result.model_uri)
    frame = pd.read_csv(reviews_csv)
    test = TextFile(path=str(reviews_csv), text_column="review", target="sentiment").prepare().splits["test"]
    predicted = model.predict(test.raw)["prediction"]
    assert set(predicted) <= {"neg", "pos"}
    accuracy = float((predicted.to_numpy() == test.raw_target.to_numpy()).mean())
    assert accuracy == pytest.approx(only.data.metrics["test_accuracy"], abs=1e-6)  # the run's own number
    rows = frame.drop(columns=["sentiment"]).head(4)  # other columns are ignored
    probs = model.predict(rows, params={"probabilities": True})
    assert list(probs.columns) == ["prediction", "probability_neg", "probability_pos"]
    assert np.allclose(probs["probability_neg"] + probs["probability_pos"], 1.0)


def test_regression_with_the_transformer_predicts_original_units(make_cfg, store, reviews_csv, tmp_path):
    overrides = text_overrides(store, reviews_csv, target="score", model="text_transformer")
    result = run(make_cfg(*overrides, "trainer.max_epochs=3", "model.d_model=16", "model.heads=2"), [], tmp_path / "o")
    assert result.task == "regression" and {"test_rmse", "test_r2"} <= set(result.metrics)
    test = TextFile(path=str(reviews_csv), text_column="review", target="score").prepare().splits["test"]
    predicted = mlflow.pyfunc.load_model(result.model_uri).predict(test.raw)["prediction"].to_numpy()
    rmse = float(np.sqrt(np.mean((predicted - test.raw_target.to_numpy()) ** 2)))
    assert rmse == pytest.approx(result.metrics["test_rmse"], rel=1e-4)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["data.text_column=body"], "data.text_column='body' is not a column of"),
        (["data.target=stars"], "data.target='stars' is not a column of"),
        (["model=mlp"], "model: MLP does not take token_ids, what data gives; choose model=embedding_bag or"),
        (["data.max_length=0"], "data.max_length=0 must be >= 1"),
        (["data.task=regression"], "data.task=regression needs a numeric target"),
    ],
)
def test_bad_text_config_is_refused_before_any_run(make_cfg, store, reviews_csv, tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        run(make_cfg(*text_overrides(store, reviews_csv), *extra), [], tmp_path / "out")
    assert not (tmp_path / "mlflow.db").exists()


def test_damaged_text_inputs_fail_clearly(make_cfg, store, reviews_csv, tmp_path):
    from mlproj.packaging.package import package_of
    from mlproj.plan import build_task, make_plan

    cfg = make_cfg(*text_overrides(store, reviews_csv))
    plan = make_plan(cfg)
    module, recipe = build_task(cfg, plan)
    pyfunc.save(package_of(plan, module, recipe), tmp_path / "m")
    assert isinstance(pyfunc.load(tmp_path / "m"), pyfunc.INPUT_PREDICTORS["text"])
    meta_path = tmp_path / "m" / pyfunc.META_FILE
    good = json.loads(meta_path.read_text())
    for damage, message in (
        (lambda m: m["inputs"].update(kind="audio"), "unknown inputs kind 'audio'"),
        (lambda m: m["inputs"]["tokenizer"].update(scheme="regex:(a+)+$"), "not a words-v1 vocabulary"),
        (lambda m: m["inputs"]["tokenizer"].update(tokens=[1, 2]), "every token must be a non-empty string"),
        (lambda m: m["inputs"].update(length=10**9), "`length` an integer"),
    ):
        meta = json.loads(json.dumps(good))
        damage(meta)
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(pyfunc.ModelLoadError, match=message.replace("(", r"\(").replace("$", r"\$")):
            pyfunc.load(tmp_path / "m")
