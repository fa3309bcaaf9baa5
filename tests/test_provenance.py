"""Provenance: commit, branch, repo URL and dirty flag all from the working directory's repository (the user's
project), mlproj's version as its own tag, and a run outside any repository says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import mlproj
import mlproj.__main__
from mlproj import tags
from tests.conftest import train_once


@pytest.fixture(autouse=True)
def started_as_python_m_mlproj(monkeypatch: pytest.MonkeyPatch) -> None:
    # `python -m mlproj`: the started file is mlproj's own, which MLflow's git context reads.
    monkeypatch.setattr(sys, "argv", [mlproj.__main__.__file__])


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


def run_tags(folder: Path) -> dict[str, str]:
    store, result, _ = train_once(folder, "model=linear")
    assert result.experiment == "mlproj-diabetes"  # the default experiment: named after the data
    return MlflowClient(store).get_run(result.run_id).data.tags


def test_a_run_in_a_repository_describes_that_repository(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q", "-b", "trunk")
    (project / "train.txt").write_text("v1\n")
    git(project, "add", "train.txt")
    git(project, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "first")
    git(project, "remote", "add", "origin", "https://someone:s3cret@example.com/team/project.git")
    (project / "train.txt").write_text("v2\n")  # a tracked file changed: dirty

    found = run_tags(project)
    assert found[tags.GIT_COMMIT] == git(project, "rev-parse", "HEAD")
    assert found[tags.GIT_BRANCH] == "trunk"
    assert found[tags.GIT_REPO_URL] == "https://example.com/team/project.git"  # no credentials
    assert found[tags.GIT_DIRTY] == "True" and found[tags.GIT] == "repository"
    assert found[tags.VERSION] == mlproj.__version__


def test_a_run_outside_any_repository_says_so(tmp_path: Path) -> None:
    if subprocess.run(["git", "-C", str(tmp_path), "rev-parse"], capture_output=True).returncode == 0:
        pytest.skip(f"{tmp_path} is inside a git repository")
    found = run_tags(tmp_path)
    assert found[tags.GIT] == "none" and found[tags.VERSION] == mlproj.__version__
    assert not {tags.GIT_COMMIT, tags.GIT_BRANCH, tags.GIT_REPO_URL, tags.GIT_DIRTY} & set(found)  # not mlproj's
