"""Moving house: copy the whole list from one database to another (a SQLite file into a
PostgreSQL database when the blog outgrows one machine, or back into a file, for a backup a
person can open with any SQLite tool).

Contract:
- `copy(source, target)`: `source` and `target` are what NEWSLETTER_DATABASE takes (a path or a
  `postgresql://` URL). The source is opened (and migrated to the code's schema) as usual; the
  target must be empty (no row in any of the newsletter's tables; a new file or a new database
  is created with the schema), else `CopyRefused` and nothing is written.
- Every table of `newsletter.schema.tables` is copied whole (subscribers with their consent
  records, the ledger of outgoing mail, feedback and the reports kept for review, plan follows,
  rate limits, used webhook tokens), ids included, parents before children, in one transaction
  on the target: a copy that fails leaves the target as empty as it was.
- Then the counts are checked table by table (`CopyFailed` if one differs; the target keeps
  what was written, for a look, and is refused as a target again until emptied) and the ids to
  come on PostgreSQL start after the copied ones. Returns the counts.
- The copy reads the source outside any write transaction: stop the endpoint and the timers
  first (docs/deployment.md) so that nothing changes meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from newsletter.database import Database
from newsletter.schema import tables

PAGE = 5000  # rows read and written at a time


class CopyRefused(Exception):
    """The target is not an empty database (or is the source itself)."""


class CopyFailed(Exception):
    """The copy's counts differ from the source's."""


def _table_list() -> list:
    return list(tables.metadata.sorted_tables)


def counts(database: Database) -> dict[str, int]:
    """Rows per table of the newsletter, every table listed."""
    return {
        table.name: database.db.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]
        for table in _table_list()
    }


def _same(source, target) -> bool:
    if isinstance(source, Path) and isinstance(target, Path):
        return source.resolve() == target.resolve()
    return str(source) == str(target)


def copy(
    source: Path | str, target: Path | str, *, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    if _same(source, target):
        raise CopyRefused("the target is the source itself: name another database")
    origin = Database(source)
    try:
        destination = Database(target)
        try:
            return _copy(origin, destination, progress or (lambda _table, _count: None))
        finally:
            destination.close()
    finally:
        origin.close()


def _copy(origin: Database, destination: Database, progress) -> dict[str, int]:
    occupied = {name: count for name, count in counts(destination).items() if count}
    if occupied:
        listed = ", ".join(f"{name} ({count})" for name, count in occupied.items())
        raise CopyRefused(
            f"{destination.describe} is not empty: {listed}. Copy into a new, empty database."
        )
    expected = counts(origin)
    with destination.transaction() as db:
        for table in _table_list():
            columns = [column.name for column in table.columns]
            names = ", ".join(f'"{name}"' for name in columns)
            order = ", ".join(f'"{column.name}"' for column in table.primary_key.columns) or names
            insert = (
                f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
            )
            cursor = origin.db.execute(f'SELECT {names} FROM "{table.name}" ORDER BY {order}')
            done = 0
            while rows := cursor.fetchmany(PAGE):
                db.executemany(insert, [tuple(row) for row in rows])
                done += len(rows)
                progress(table.name, done)
            if destination.dialect == "postgresql" and "id" in columns and expected[table.name]:
                db.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'),"
                    f' (SELECT max(id) FROM "{table.name}"))'
                )
    found = counts(destination)
    if found != expected:
        differ = ", ".join(
            f"{name}: {expected[name]} in the source, {found[name]} copied"
            for name in expected
            if expected[name] != found[name]
        )
        raise CopyFailed(f"the copy's counts differ from the source's: {differ}")
    return found


__all__ = ["CopyFailed", "CopyRefused", "copy", "counts"]
