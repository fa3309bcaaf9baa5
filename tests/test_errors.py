"""One error family with exit codes (mlproj.errors), caught once by every entry point; the README's table."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import signal
from pathlib import Path

import pytest

import mlproj
from mlproj import errors

README = Path(__file__).resolve().parents[1] / "README.md"


def mlproj_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(mlproj.__path__, "mlproj.") if not m.name.endswith("__main__")]


def test_every_exception_mlproj_defines_is_in_the_family():
    """A new error class outside MlprojError would escape the entry points' one `except` as a traceback."""
    outside = []
    for name in mlproj_modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, errors.MlprojError):
                outside.append(f"{name}.{cls_name}")
    assert outside == ["mlproj.errors.Interrupted"]  # an interrupt must pass through `except Exception`


def test_errors_keep_the_builtin_types_callers_catch():
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.InputError, errors.ConfigError)
    assert issubclass(errors.TrainingDiverged, FloatingPointError)
    assert issubclass(errors.Interrupted, KeyboardInterrupt) and not issubclass(errors.Interrupted, Exception)


@pytest.mark.parametrize(
    "exc,code",
    [
        (errors.ConfigError("x"), 2),
        (errors.InputError("x"), 2),
        (errors.ModelLoadError("x"), 2),
        (errors.TrackingUnreachable("x"), 1),
        (errors.RegistryError("x"), 1),
        (errors.TrainingDiverged("x"), 1),
        (errors.KeptLocally(Path("unlogged"), "abc"), 75),
        (errors.Interrupted(signal.SIGINT), 130),
        (errors.Interrupted(signal.SIGTERM), 143),
        (KeyboardInterrupt(), 130),
        (RuntimeError("a bug"), 1),
    ],
)
def test_exit_codes(exc, code):
    assert errors.exit_code(exc) == code


def test_report_is_one_line_with_the_errors_code(capsys):
    assert errors.report(errors.ConfigError("data.path is required"), "mlproj.predict") == 2
    assert capsys.readouterr().err == "mlproj.predict: error: data.path is required\n"
    kept = errors.KeptLocally(Path("out/unlogged"), "r1")
    assert errors.report(kept) == 75
    assert capsys.readouterr().err.startswith("mlproj: results kept locally: the tracking server was lost")


def test_the_readme_table_is_the_one_errors_makes():
    text = README.read_text()
    found = re.search(r"<!-- exit-codes:[^>]*-->\n(.*?)\n<!-- /exit-codes -->", text, re.S)
    assert found, "README has no generated exit-code table"
    assert found.group(1) == errors.exit_code_table()
    for cls in errors.FAMILY:
        assert f"`{cls.__name__}`" in found.group(1)


def test_entry_points_catch_the_family_once(tmp_path, capsys):
    """Each command's own errors, through its main(): one line, the family's exit code, no traceback."""
    from mlproj import predict, register, upload

    assert register.main(["--experiment", "nope", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 2
    # before the error: MLflow's own INFO lines as it creates the new store; of mlproj, one line and no traceback
    err = capsys.readouterr().err
    assert "Traceback" not in err and [line for line in err.splitlines() if "mlproj" in line] == [
        "mlproj.register: error: no experiment named 'nope'; experiments: Default"
    ], err
    assert predict.main(["models:/x/1", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err == f"mlproj.predict: error: {tmp_path / 'missing.csv'}: no such file\n"
    assert upload.main([str(tmp_path / "unlogged")]) == 2
    folder = tmp_path / "unlogged"
    assert capsys.readouterr().err == (
        f"mlproj.upload: error: {folder / 'run.json'} not found (is {folder} an unlogged/ folder?)\n"
    )


def test_no_error_is_caught_by_its_class_name():
    """`type(exc).__name__ == ...` breaks silently on a rename; the family makes it unneeded."""
    root = Path(mlproj.__file__).parent
    found = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "__name__ ==" in p.read_text().replace('if __name__ == "__main__"', "")
    ]
    assert found == []
