"""Study storage URLs: the one parser, shared by params validation and the storage openers.

Optuna takes SQLAlchemy URLs (``sqlite:///...``, ``postgresql://...``) directly, but has no
URL for its journal file storage. Here ``journal:///path/to/study.log`` names one, with the
same rule for relative and absolute paths as SQLite (three slashes + a relative path, four
for an absolute one), so every command takes one ``--storage URL`` whatever the backend.
These three are what the tuning engine can share safely between workers; nothing else is
accepted anywhere. No optuna import here: params validation runs in every stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SQLITE = "sqlite:///"
JOURNAL = "journal:///"
USAGE = "use sqlite:///PATH, journal:///PATH or postgresql://USER@HOST[:PORT]/DATABASE"


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL: which backend, and the file behind it (None for a server)."""

    url: str
    kind: Literal["sqlite", "journal", "postgresql"]
    path: Path | None


def parse_storage_url(url: str, allow_password: bool = True) -> StorageURL:
    """Parse ``url``; a ``ValueError`` says what is wrong without echoing a password.

    ``allow_password=False`` is for params.yaml, which is committed: libpq reads the
    password from ``PGPASSWORD`` or ``~/.pgpass`` instead.
    """
    for kind, prefix in (("sqlite", SQLITE), ("journal", JOURNAL)):
        if url.startswith(prefix):
            if not url[len(prefix) :].strip("/"):
                raise ValueError(f"{url!r} names no file; e.g. {prefix}tuning/study.db")
            return StorageURL(url, kind, Path(url[len(prefix) :]))  # type: ignore[arg-type]
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        shown = f"{scheme}://..." if sep else repr(url)  # never echo a password
        raise ValueError(f"{shown} is not a supported storage; {USAGE}")
    userinfo = rest.split("/", 1)[0].rpartition("@")[0]
    if not allow_password and (":" in userinfo or "password=" in rest):
        raise ValueError(
            "the PostgreSQL URL holds a password, which must not be written in params.yaml; "
            "remove it and set PGPASSWORD (or ~/.pgpass) where each worker runs"
        )
    return StorageURL(url, "postgresql", None)


def storage_file(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` or ``journal:///`` URL, or None for a server URL."""
    return parse_storage_url(url).path


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs.

    Takes any string, parsable or not, since it also shows the URLs that failed to parse.
    """
    if url.startswith((SQLITE, JOURNAL)) or "://" not in url:
        return url
    from sqlalchemy.engine import make_url  # only here: a server URL to show

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say nothing about its parts
        return url.split("://", 1)[0] + "://***"


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (relative paths resolved against the cwd)."""
    return Path(a).resolve() == Path(b).resolve()
