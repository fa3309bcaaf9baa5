"""Attacks through `_target_`: each refused in one line before anything runs (no MLflow store, no run), and
the function it names is never called (its side effect does not happen)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from mlproj.__main__ import main
from mlproj.errors import ModelLoadError
from mlproj.packaging import pyfunc as packaging
from tests.conftest import houses_frame, table_package
from tests.test_packaging import small_model


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    """`python -m mlproj ARGS`, in-process."""
    monkeypatch.setattr(sys, "argv", ["mlproj", *args])
    # Hydra points the root logger at the streams of the moment (pytest's captured ones): put it back after.
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        logging.root.handlers[:], logging.root.level = handlers, level
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return info.value.code, lines


def assert_nothing_tracked(cwd: Path) -> None:
    assert not (cwd / "mlflow.db").exists() and not (cwd / "mlruns").exists()


def test_function_as_optimizer_with_nested_targets_is_refused(tmp_path, monkeypatch, capsys):
    # torch.hub.load takes **kwargs, so a signature check alone lets it (and its nested nodes) through.
    pwned = tmp_path / "pwned"
    code, lines = run_main(
        monkeypatch,
        capsys,
        "optimizer._target_=torch.hub.load",
        "+optimizer.x._target_=os.makedirs",
        f"+optimizer.x.name={pwned}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert code == 2
    assert lines == [
        "mlproj: error: optimizer._target_='torch.hub.load' is a function, not a class of torch.optim.Optimizer"
    ]
    assert not pwned.exists()
    assert_nothing_tracked(tmp_path)


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "+hydra.callbacks.x={_target_:logging.basicConfig,filename:VICTIM,filemode:w}",
            "hydra.callbacks.x._target_='logging.basicConfig' is a function, not a class of "
            "hydra.experimental.callback.Callback",
        ),
        (
            "+hydra.callbacks.x={_target_:mlproj.sweeps.callback.SweepCallback,"
            "y:{_target_:logging.basicConfig,filename:VICTIM,filemode:w}}",
            "hydra.callbacks.x.y is not a parameter of mlproj.sweeps.callback.SweepCallback; parameters: ",
        ),
        (
            "hydra.launcher._target_=logging.basicConfig",
            "hydra.launcher._target_='logging.basicConfig' is a function, not a class of hydra.plugins.launcher.Launcher",
        ),
        (
            "hydra.sweeper._target_=logging.Logger",
            "hydra.sweeper._target_='logging.Logger' is not a hydra.plugins.sweeper.Sweeper class",
        ),
    ],
)
def test_hydra_nodes_are_checked_before_hydra_instantiates_them(tmp_path, monkeypatch, capsys, override, message):
    victim = tmp_path / "victim.log"
    victim.write_text("precious\n")
    code, lines = run_main(
        monkeypatch, capsys, override.replace("VICTIM", str(victim)), f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"
    )
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == f"mlproj: error: {message}" or (
        message.endswith(" ") and lines[0].startswith(f"mlproj: error: {message}")
    )
    assert victim.read_text() == "precious\n"
    assert_nothing_tracked(tmp_path)
    assert not (tmp_path / "outputs").exists()  # refused before Hydra made the run's folder


def test_a_misspelt_override_gets_one_line_with_the_right_fix(tmp_path, monkeypatch, capsys):
    code, lines = run_main(monkeypatch, capsys, "trainer.max_epochz=3")
    assert code == 2 and len(lines) == 1 and "did you mean max_epochs?" in lines[0], lines
    assert_nothing_tracked(tmp_path)


def tamper(meta_file: Path, model: dict) -> None:
    meta = json.loads(meta_file.read_text())
    meta["node"] = model  # what the packaged network is rebuilt from
    meta_file.write_text(json.dumps(meta))


def test_tampered_packaged_model_is_refused_without_calling_it(tmp_path):
    path, _, _ = small_model(tmp_path)
    victim = tmp_path / "victim.log"
    victim.write_text("precious\n")
    tamper(path / "mlproj.json", {"_target_": "logging.basicConfig", "filename": str(victim), "filemode": "w"})
    with pytest.raises(packaging.ModelLoadError) as info:
        packaging.load(path)
    assert "\n" not in str(info.value)
    assert "model._target_='logging.basicConfig' is a function, not a class of torch.nn.Module" in str(info.value)
    assert victim.read_text() == "precious\n"


def test_model_class_from_outside_its_code_and_the_installed_packages_is_refused(tmp_path, monkeypatch):
    path, _, _ = small_model(tmp_path)
    marker = tmp_path / "evil-imported"
    # A name no test imported before: a module already imported by trusted code may be named (it runs nothing new).
    (tmp_path / "evil_outside.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport torch\nclass Net(torch.nn.Linear):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # `python -m` puts the current directory first
    tamper(path / "mlproj.json", {"_target_": "evil_outside.Net"})
    with pytest.raises(packaging.ModelLoadError, match=r"evil_outside.py, which is neither the model's code folder"):
        packaging.load(path)
    assert not marker.exists()


def test_tampered_mlflow_model_is_refused_by_mlflow_and_predict_in_one_line(tmp_path, monkeypatch, capsys):
    import mlflow

    from mlproj import predict

    monkeypatch.setattr(sys, "path", list(sys.path))  # MLflow prepends the model's code/ folder
    _, raw, original = small_model(tmp_path)
    folder = tmp_path / "mlflow_model"
    model_cfg = {"_target_": "mlproj.models.MLP", "hidden_sizes": [8]}
    packaging.save_model(folder, table_package(original.network, model_cfg, original.pre, houses_frame(60)))
    victim = tmp_path / "victim.log"
    victim.write_text("precious\n")
    (meta_file,) = folder.glob("data/*/mlproj.json")
    tamper(meta_file, {"_target_": "logging.basicConfig", "filename": str(victim), "filemode": "w"})
    with pytest.raises(ModelLoadError, match=r"is a function, not a class of torch.nn.Module") as info:
        mlflow.pyfunc.load_model(str(folder))
    assert "\n" not in str(info.value)
    raw.to_csv(tmp_path / "rows.csv", index=False)
    capsys.readouterr()  # what saving the model logged
    code = predict.main([str(folder), str(tmp_path / "rows.csv"), "-o", str(tmp_path / "out.csv")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("mlproj.predict: error: cannot load"), lines
    assert "logging.basicConfig" in lines[0]
    assert victim.read_text() == "precious\n" and not (tmp_path / "out.csv").exists()
