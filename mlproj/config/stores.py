"""Where runs, artifacts and models go, checked before anything is created: the tracking and registry URIs
(parsed, scheme known, a sqlite store's folder writable), the artifact location (writable when local), the
experiment and run names (names, never paths), the registered model's name (MLflow's rules) and Databricks
credentials. Nothing here imports MLflow or creates a file. Each check raises ConfigError naming the key."""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mlproj.errors import ConfigError

# The schemes MLflow opens a tracking or registry store for ("" is a local folder); SQLAlchemy's
# `dialect+driver` forms count by their dialect.
STORE_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc")
REGISTRY_SCHEMES = (*STORE_SCHEMES, "uc")
_EXAMPLES = "sqlite:///path/to/mlflow.db, http(s)://host:port, postgresql://..., databricks, or a folder"


def check_stores(tracking: Any, model_name: str | None) -> None:
    """Every tracking.* location and name, and registry.model_name."""
    check_uri("tracking.uri", tracking.uri, STORE_SCHEMES)
    if not tracking.uri:  # what is used instead
        check_uri("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI"), STORE_SCHEMES)
    check_uri("tracking.registry_uri", tracking.registry_uri, REGISTRY_SCHEMES)
    if tracking.artifact_location:
        check_artifact_location(str(tracking.artifact_location))
    workspace = str(getattr(tracking.backend, "value", tracking.backend)) == "databricks"
    if tracking.experiment is not None:  # None: mlproj-<data name> (mlproj.config.naming)
        check_name("tracking.experiment", tracking.experiment, workspace_path=workspace)
    if tracking.run_name is not None:
        check_name("tracking.run_name", tracking.run_name)
    if model_name is not None:
        check_model_name(str(model_name))
    for group in ("tags", "experiment_tags"):
        for name in tracking[group] or {}:
            check_tag_key(f"tracking.{group}", str(name))


_TAG_KEY = re.compile(r"^[/\w.\- :]+$")  # mlflow.utils.validation.validate_param_and_metric_name (POSIX)


def check_tag_key(key: str, name: str) -> None:
    """MLflow's rules for a tag's key (mlflow.utils.validation._validate_tag_name), before the run is created."""
    if not _TAG_KEY.match(name) or posixpath.normpath(name) != name or name.startswith(("/", "..")):
        raise ConfigError(
            f"{key}: {name!r} is not a valid tag key (letters, digits, _ - . : / and spaces; not a path like ../x)"
        )


def check_uri(key: str, uri: str | None, schemes: tuple[str, ...]) -> None:
    if not uri:
        return
    text = str(uri)
    if text in ("databricks", "databricks-uc", "uc"):  # MLflow's names for a workspace (credentials: below)
        return
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError as exc:
        raise ConfigError(f"{key}={text!r} is not a valid URI ({exc})") from None
    scheme = parts.scheme.split("+", 1)[0].lower()
    if len(scheme) == 1:  # a Windows drive letter: a folder
        scheme = ""
    if scheme not in schemes:
        raise ConfigError(f"{key}={text!r}: MLflow has no store for scheme {scheme!r}; use {_EXAMPLES}")
    if scheme in ("http", "https") and not parts.hostname:  # a database may be on a Unix socket: no host
        raise ConfigError(f"{key}={text!r} names no host; e.g. {scheme}://127.0.0.1:5000")
    if scheme == "sqlite":
        path = text.split("sqlite:///", 1)[1] if text.startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            raise ConfigError(f"{key}={text!r} names no database file; use sqlite:///path/to/mlflow.db")
        check_writable(key, Path(path).expanduser().resolve().parent)
    elif scheme in ("", "file"):
        check_writable(key, Path(unquote(parts.path) if scheme else text).expanduser().resolve())


def check_artifact_location(location: str) -> None:
    """A local artifact location must be writable; remote ones (s3://, gs://, ...) are the store's to check."""
    key = "tracking.artifact_location"
    try:
        parts = urlsplit(location)
    except ValueError as exc:
        raise ConfigError(f"{key}={location!r} is not a valid URI ({exc})") from None
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:
        local = unquote(parts.path) if parts.scheme == "file" else location
        check_writable(key, Path(local).expanduser().resolve())


def check_writable(key: str, folder: Path) -> None:
    """`folder` exists and takes a file, or its nearest existing parent does (nothing is left behind: the
    probe is an unnamed temporary file)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot write in {existing} ({exc.strerror or exc})") from None


def check_name(key: str, name: Any, workspace_path: bool = False) -> None:
    """A name is a name: not empty, no `/` or `\\`, not `.`/`..`, no control character (a newline). On
    Databricks an experiment is a workspace path: absolute, and with no `.`/`..` part."""
    text = str(name)
    if not text.strip():
        raise ConfigError(f"{key} must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"{key}={text!r} holds a control character (a newline?); give a plain name")
    if len(text) > 500:  # MLflow's limit (an experiment's; a run's name is kept as short)
        raise ConfigError(f"{key} is {len(text)} characters long; at most 500")
    if workspace_path:
        if not text.startswith("/") or any(p in (".", "..") for p in text.split("/")) or "\\" in text:
            raise ConfigError(f"{key}={text!r}: a Databricks experiment is a workspace path such as /Shared/mlproj")
        return
    if text.strip() in (".", "..") or "/" in text or "\\" in text:
        raise ConfigError(f"{key}={text!r} is a name, not a path: no '/', '\\', '.' or '..'")


def check_model_name(name: str) -> None:
    """MLflow's rules for a registered model's name (mlflow.utils.validation._validate_model_name), checked
    before training rather than at registration."""
    key = "registry.model_name"
    if not name.strip():
        raise ConfigError(f"{key} must not be empty")
    norm = posixpath.normpath(name)
    if "/" in name or ":" in name or norm != name or norm == "." or norm.startswith(".."):
        raise ConfigError(f"{key}={name!r}: a registered model's name cannot contain '/' or ':' nor be '.' or '..'")


def check_databricks_credentials(tracking: Any) -> None:
    """tracking=databricks needs a workspace and a token: from the environment or a ~/.databrickscfg profile
    (`databricks://PROFILE` names one; DEFAULT otherwise)."""
    uris = [str(u) for u in (tracking.uri, tracking.registry_uri) if u]
    if not any(u.split(":", 1)[0] in ("databricks", "databricks-uc") for u in uris):
        return
    if os.environ.get("DATABRICKS_HOST") and any(
        os.environ.get(v) for v in ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_PASSWORD")
    ):
        return
    profile = os.environ.get("DATABRICKS_CONFIG_PROFILE") or "DEFAULT"
    for uri in uris:
        if "://" in uri and urlsplit(uri).netloc:
            profile = urlsplit(uri).netloc.split(":")[0]
    config = Path(os.environ.get("DATABRICKS_CONFIG_FILE") or "~/.databrickscfg").expanduser()
    if config.is_file():
        import configparser
        from contextlib import suppress

        parser = configparser.ConfigParser()
        with suppress(configparser.Error):  # an unreadable file holds no profile
            parser.read(config)
        if parser.has_section(profile) or (profile == "DEFAULT" and parser.defaults()):
            return
    raise ConfigError(
        f"tracking=databricks has no credentials: set DATABRICKS_HOST and DATABRICKS_TOKEN, or add a [{profile}] "
        f"profile to {config} (databricks configure)"
    )
