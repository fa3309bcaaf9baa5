"""The default experiment is named after the data: mlproj-<data name>, the same from the CLI and from Python."""

from __future__ import annotations

import pytest

from mlproj.config.naming import fill_default_experiment
from mlproj.registry.gate import default_model_name
from tests.conftest import compose_cfg


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], "mlproj-diabetes"),
        (["data=wine"], "mlproj-wine"),
        (["data=csv", "data.path=/data/houses.csv.gz", "data.target=price"], "mlproj-houses"),
        (["data=synthetic"], "mlproj-SyntheticTable"),
        (["data=digits_images"], "mlproj-DigitsImages"),  # no name, no file: the class (a data module of yours)
        (["tracking.experiment=mine"], "mine"),  # chosen: kept
    ],
)
def test_default_experiment_is_named_after_the_data(overrides: list[str], expected: str) -> None:
    cfg = compose_cfg(*overrides)
    fill_default_experiment(cfg)
    assert cfg.tracking.experiment == expected


def test_the_default_model_name_does_not_repeat_the_data() -> None:
    assert default_model_name("mlproj-diabetes", "diabetes") == "mlproj-diabetes"
    assert default_model_name("mlproj-houses", "houses", "price") == "mlproj-houses-price"
    assert default_model_name("team", "diabetes") == "team-diabetes"


def test_mlprojs_own_experiment_names_give_mlproj_and_the_loaded_datas_name() -> None:
    # data=digits_images: its default experiment is named after the class, the model after the loaded data
    assert default_model_name("mlproj-DigitsImages", "digits_images") == "mlproj-digits_images"
    assert default_model_name("mlproj", "diabetes") == "mlproj-diabetes"
