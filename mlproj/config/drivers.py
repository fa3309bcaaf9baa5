"""Database URIs need a driver that is not a default dependency: say which extra installs it, in one line.

MLflow (`tracking.uri`, `mlproj.server --backend-store-uri`) and Optuna (`sweep.storage`) open such URIs
with SQLAlchemy, whose `postgresql://` means psycopg (v3) from SQLAlchemy 2.1 and psycopg2 before it. So
the check asks SQLAlchemy for the URI's own driver rather than guessing one, and runs before anything starts.
"""

from __future__ import annotations

from mlproj.errors import ConfigError

# scheme -> the extra that installs its drivers (pyproject.toml [project.optional-dependencies])
EXTRAS = {"postgresql": "postgres", "postgres": "postgres"}


def check_database_uri(key: str, uri: str | None) -> None:
    """Raise ConfigError naming `mlproj[postgres]` when `uri` is a PostgreSQL URI whose driver is missing."""
    if not uri or "://" not in str(uri):
        return
    scheme = str(uri).split("://", 1)[0].split("+", 1)[0].lower()
    extra = EXTRAS.get(scheme)
    if extra is None:  # sqlite is in the standard library; http(s), file, databricks are not databases here
        return
    if scheme == "postgres":
        raise ConfigError(f"{key}: write postgresql://... (SQLAlchemy does not accept postgres://)")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(str(uri)).get_dialect()
        # SQLAlchemy 2 spells it import_dbapi; 1.4 (which MLflow still accepts) dbapi
        (dialect.import_dbapi if hasattr(dialect, "import_dbapi") else dialect.dbapi)()
    except (ImportError, NoSuchModuleError):
        raise ConfigError(
            f"{key}: a PostgreSQL URI needs its database driver; install it with pip install 'mlproj[{extra}]'"
        ) from None
    except ArgumentError as exc:
        raise ConfigError(f"{key}: not a valid database URI ({exc})") from None
