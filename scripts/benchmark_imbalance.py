"""Imbalanced binary tables: the minority class's F1 of mlproj before (unweighted loss, threshold 0.5), with
its default (two classes: the threshold chosen on validation), balanced class weights alone and with the
threshold (mlproj.tasks.imbalance), beside
scikit-learn's LogisticRegression (plain and class_weight="balanced") on the same split and preprocessing.

Tables (nothing downloaded): `rare3`: make_classification, 12,000 rows, 3% positives; `hard2`: the same
with 2% positives, 3 informative features and little separation; `digits9`: scikit-learn's digits,
"is it a 9" (10% positives); `cancer9`: breast_cancer with the malignant class subsampled to 9% of the rows
(the minority is label 0; its test split holds 5 minority rows: noisy). The split is
mlproj's own (data.split_seed=42, stratified 70/15/15: TableFile.prepare()); mlproj runs in-process with its
default model and trainer (early stopping on val_loss), a temporary sqlite store, seeds 0..R-1.

    python scripts/benchmark_imbalance.py            # 3 seeds
    python scripts/benchmark_imbalance.py --quick    # 1 seed, 3 epochs: the path works
The last line is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def tables(folder: Path) -> dict[str, Path]:
    from sklearn.datasets import load_breast_cancer, load_digits, make_classification

    x, y = make_classification(
        n_samples=12000, n_features=10, n_informative=5, weights=[0.97, 0.03], flip_y=0.01, class_sep=0.8,
        random_state=0,
    )  # fmt: skip
    rare = pd.DataFrame(x, columns=[f"f{i}" for i in range(10)]).assign(label=y)
    bunch = load_breast_cancer(as_frame=True)
    cancer = bunch.frame.rename(columns={"target": "label"})
    malignant = cancer[cancer.label == 0].sample(36, random_state=0)
    cancer = pd.concat([cancer[cancer.label == 1], malignant]).sample(frac=1, random_state=0)
    x, y = make_classification(
        n_samples=12000, n_features=10, n_informative=3, weights=[0.98, 0.02], flip_y=0.01, class_sep=0.5,
        random_state=0,
    )  # fmt: skip
    hard = pd.DataFrame(x, columns=[f"f{i}" for i in range(10)]).assign(label=y)
    digits = load_digits(as_frame=True).frame
    digits["label"] = (digits.pop("target") == 9).astype(int)  # "is it a 9": 10% positives
    paths = {name: folder / f"{name}.csv" for name in ("rare3", "hard2", "digits9", "cancer9")}
    for name, frame in zip(paths, (rare, hard, digits, cancer), strict=True):
        frame.to_csv(paths[name], index=False)
    return paths


def minority_f1(truth: pd.Series, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    minority = truth.value_counts().index[-1]
    return float(f1_score(truth, predicted, pos_label=minority))


def logistic(prepared) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    train, test = prepared.splits["train"], prepared.splits["test"]
    found = {}
    for name, weight in (("logreg", None), ("logreg_balanced", "balanced")):
        model = LogisticRegression(max_iter=2000, class_weight=weight).fit(train.x, train.raw_target)
        found[name] = minority_f1(test.raw_target, model.predict(test.x))
    return found


def mlproj_f1(csv: Path, prepared, seed: int, extra: list[str], work: Path, epochs: int | None) -> float:
    import mlflow
    from hydra import compose, initialize_config_dir

    from mlproj.config.schema import config_dir
    from mlproj.train import run

    overrides = [
        "data=csv", f"data.path={csv}", "data.target=label", f"seed={seed}", "trainer.accelerator=cpu",
        "trainer.devices=1", "trainer.progress_bar=none", "quiet=true", "tracking.log_plots=false",
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}", *extra,
        *([f"trainer.max_epochs={epochs}"] if epochs else []),
    ]  # fmt: skip
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    result = run(cfg, overrides, work / f"{csv.stem}-{seed}")
    test = prepared.splits["test"]
    predicted = mlflow.pyfunc.load_model(result.model_uri).predict(test.raw)["prediction"]
    return minority_f1(test.raw_target, predicted.to_numpy())


def print_table(rows: dict[str, dict[str, float]], variants: list[str], seeds: int) -> None:
    print(f"machine: {platform.machine()} {platform.processor() or ''}, seeds={seeds}")
    names = ["logreg", "logreg_balanced", *variants]
    print(f"{'table':<9} {'minority':>8} " + " ".join(f"{n:>15}" for n in names) + f" {'default/logreg':>14}")
    for name, r in rows.items():
        cells = [f"{r[n]:.3f}" + (f"±{r[n + '_std']:.3f}" if n in variants else "") for n in names]
        ratio = r["default"] / max(r["logreg"], 1e-9)
        print(f"{name:<9} {r['minority_share']:>8.3f} " + " ".join(f"{c:>15}" for c in cells) + f" {ratio:>14.2f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tables", default="rare3,hard2,digits9,cancer9", help="comma-separated subset")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    from mlproj.data.sources import TableFile

    seeds, epochs = (1, 3) if args.quick else (args.seeds, None)
    variants = {  # name -> overrides; "default" is what a run without flags does
        "before": ["++task.class_weight=none", "++task.threshold=0.5"],
        "default": [],  # two classes: unweighted loss, threshold chosen on validation
        "weights": ["++task.class_weight=balanced", "++task.threshold=0.5"],
        "weights_thr": ["++task.class_weight=balanced"],
    }
    rows = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, csv in tables(work).items():
            if name not in args.tables.split(","):
                continue
            prepared = TableFile(path=str(csv), target="label").prepare()
            share = prepared.splits["train"].raw_target.value_counts(normalize=True).iloc[-1]
            found = {"minority_share": float(share), **logistic(prepared)}
            for label, extra in variants.items():
                scores = [mlproj_f1(csv, prepared, s, extra, work / label, epochs) for s in range(seeds)]
                found[label] = float(np.mean(scores))
                found[label + "_std"] = float(np.std(scores))
            rows[name] = found
    print_table(rows, list(variants), seeds)
    print(json.dumps({"tables": rows, "seconds": round(time.perf_counter() - began, 1)}))


if __name__ == "__main__":
    main()
