"""The one schema history, for SQLite and PostgreSQL: Alembic migrations (`versions/`), each
change described once in SQLAlchemy's dialect-neutral terms.

Contract:
- `upgrade(database)` brings the database to `HEAD`, under the database's writer lock (the file
  lock and BEGIN IMMEDIATE on SQLite, the advisory writer lock on PostgreSQL), in one
  transaction: a failed migration changes nothing. Many processes may call it at once: the
  first migrates, the others find it done. A database newer than the code is refused.
- `current(connection)`: the revision a database is at (None: none yet), read without Alembic
  (opening an up-to-date database costs one query, not an import of Alembic).
- Revisions are named `NNNN_what_it_does.py` with `revision = "NNNN"`, one after the other;
  `HEAD` is the highest. `0011` is the baseline: the schema as the numbered SQL files of
  `newsletter/migrations/` left it (SQLite files made before Alembic run those first, then are
  stamped `0011`: `newsletter.database`).
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS = HERE / "versions"
BASELINE = "0011"
VERSION_TABLE = "alembic_version"


def revisions() -> list[str]:
    found = sorted(
        match.group(1)
        for path in VERSIONS.glob("*.py")
        if (match := re.fullmatch(r"(\d{4})_[a-z0-9_]+\.py", path.name))
    )
    return found


HEAD = revisions()[-1]


def current(connection) -> str | None:
    """The revision recorded in the database (None: not under Alembic yet). `connection` is
    one of `Database`'s (sqlite3's, or the PostgreSQL adapter's)."""
    try:
        row = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except Exception:  # noqa: BLE001 - no table yet (the error type is the driver's)
        return None
    return row[0] if row else None


def _config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("version_locations", str(VERSIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def run(connection, target: str = "head", *, stamp: bool = False) -> None:
    """Alembic's upgrade (or stamp) on `connection` (SQLAlchemy, inside the caller's
    transaction, which holds the writer lock)."""
    from alembic import command

    config = _config(connection)
    if stamp:
        command.stamp(config, target)
    else:
        command.upgrade(config, target)


def differences(connection) -> list:
    """How the database on `connection` (SQLAlchemy) differs from `tables.metadata`: tables,
    columns and their types and nullability, indexes, unique constraints and foreign keys
    (Alembic's comparison). Empty: it is the schema the code expects."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from newsletter.schema.tables import metadata

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    found = []
    for change in compare_metadata(context, metadata):
        group = change if isinstance(change, list) else [change]
        kept = [one for one in group if not _noise(connection, one)]
        if kept:
            found.append(kept if isinstance(change, list) else kept[0])
    return found


def _noise(connection, change) -> bool:
    """What SQLAlchemy's reflection of SQLite cannot see, checked another way: a primary key
    column is reported nullable, and `REFERENCES t (id) ON DELETE ...` (a space before the
    parenthesis, as the numbered SQL files wrote it) loses its action: PRAGMA
    foreign_key_list says what SQLite enforces."""
    kind = change[0]
    if kind == "remove_table":
        return change[1].name == VERSION_TABLE
    if connection.dialect.name != "sqlite":
        return False
    if kind == "modify_nullable":
        table, column = change[2], change[3]
        columns = connection.exec_driver_sql(f"PRAGMA table_info({table})").fetchall()
        return any(row[1] == column and row[5] for row in columns)  # row[5]: in the key
    if kind in ("remove_fk", "add_fk"):
        fk = change[1]
        table = fk.parent.name
        wanted = (
            {
                (element.parent.name, element.column.table.name, element.column.name)
                for element in fk.elements
            }
            if kind == "add_fk"
            else set()
        )
        enforced = {
            (row[3], row[2], row[4], row[6].upper())
            for row in connection.exec_driver_sql(f"PRAGMA foreign_key_list({table})")
        }
        if kind == "add_fk":
            action = (fk.ondelete or "NO ACTION").upper()
            return all((*one, action) in enforced for one in wanted)
        return True  # a reflected key the metadata lacks is reported again as add_fk: judged there
    return False


__all__ = ["BASELINE", "HEAD", "current", "differences", "revisions", "run"]
