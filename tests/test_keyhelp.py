"""`--help` and `--help KEY`: each key's one-line description and default, from the schema's own comments."""

from __future__ import annotations

from mlproj.config.keyhelp import all_keys
from tests.conftest import run_main


def test_help_key_shows_its_description_and_default(capsys) -> None:
    assert run_main("--help", "trainer.max_epochs") == 0
    assert capsys.readouterr().out.strip() == (
        "trainer.max_epochs (default: 100): passes over the training data at most (early stopping may end sooner)"
    )
    assert run_main("--help", "registry") == 0
    out = capsys.readouterr().out
    assert out.startswith("registry: The gate after a run")
    assert "  registry.when (default: each): each: gate every run;" in out and "[choices: each, best]" in out
    assert run_main("-h", "data") == 0  # a group: its default option and every option
    out = capsys.readouterr().out
    assert out.startswith("data (default: diabetes): ") and "options (data=NAME): breast_cancer, csv," in out
    assert run_main("--help", "model.hidden_sizes") == 0  # a keyword of the option's class
    assert capsys.readouterr().out.startswith("model.hidden_sizes (default: [128, 64]): a keyword of mlproj.models.MLP")


def test_help_of_an_unknown_key_is_one_line_with_the_fix(capsys) -> None:
    assert run_main("--help", "trainer.max_epoch") == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("mlproj: error: --help trainer.max_epoch: not a setting of trainer; did you mean")
    assert "trainer.max_epochs?" in line and "Traceback" not in captured.out + captured.err


def test_plain_help_lists_every_key_after_hydras_help(capsys) -> None:
    assert run_main("--help") == 0
    out = capsys.readouterr().out
    assert "== Configuration groups ==" in out  # Hydra's own help first
    assert "\ntracking.experiment (default: null): None: mlproj-<data name>, e.g. mlproj-diabetes" in out
    assert "\nseed (default: 42): " in out


def test_every_schema_key_is_described() -> None:
    undescribed = [k.key for k in all_keys() if not k.description]
    assert undescribed == []
