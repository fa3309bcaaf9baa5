"""Which code a run came from: the git repository of the working directory (the user's project).

Commit, branch, remote URL and dirty flag all describe that one repository, never mlproj's own source (MLflow's
own git context reads the file that was started: `python -m mlproj` is mlproj's). mlproj's version is a tag of
its own (tags.VERSION). Outside any repository the run says so (tags.GIT = "none") and carries no commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlproj import tags

# MLflow's own git tags: set from the working directory's repository, or removed from a run outside one.
MLFLOW_GIT_TAGS = (tags.GIT_COMMIT, tags.GIT_BRANCH, tags.GIT_REPO_URL)


def git_tags(folder: Path | None = None) -> dict[str, str]:
    """The provenance tags of the repository holding `folder` (default: the working directory)."""
    where = str(folder or Path.cwd())
    commit = _git(where, "rev-parse", "HEAD")
    if not commit:
        return {tags.GIT: "none"}
    found = {tags.GIT: "repository", tags.GIT_COMMIT: commit}
    found[tags.GIT_DIRTY] = str(bool(_git(where, "status", "--porcelain", "--untracked-files=no")))
    branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":  # "HEAD": a detached checkout has no branch
        found[tags.GIT_BRANCH] = branch
    remotes = _git(where, "remote").split()
    if remotes:
        url = _git(where, "remote", "get-url", "origin" if "origin" in remotes else remotes[0])
        if url:
            found[tags.GIT_REPO_URL] = without_credentials(url)
    return found


def drop_foreign_git_tags(client: Any, run: Any, run_tags: dict[str, str]) -> None:
    """Outside any repository, MLflow's own git context (which reads the started file: mlproj's source) must
    not give the run mlproj's commit."""
    if run_tags.get(tags.GIT) == "none":
        for key in MLFLOW_GIT_TAGS:
            if key in run.data.tags:
                client.delete_tag(run.info.run_id, key)


def without_credentials(url: str) -> str:
    """https://user:token@host/x.git -> https://host/x.git (scp-style git@host:x.git is left as it is)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return url


def _git(where: str, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", where, *args], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()
