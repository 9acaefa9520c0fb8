"""The join of every fact by link, on disk: memory stays bounded whatever the window.

Facts are appended to one SQLite table in a scratch file (no journal, no fsync: the
file is rebuilt by the next run), indexed by reference once loading is done, and read
back ordered by reference, one link's facts at a time. SQLite's page cache is bounded
(``CACHE_MB``), so a window of a million links costs disk, not memory.

Links created before references carried their link key's hash (``pl_``) are named by
their created event's reference at the provider; :meth:`FactStore.alias` records it so
the provider's facts about them join the link's other facts.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from streams.reconcile.facts import Fact, Kind

CACHE_MB = 16
BATCH = 10_000


class FactStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, path.with_name(path.name + "-journal")):
            stale.unlink(missing_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(f"""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA temp_store = FILE;
            PRAGMA cache_size = -{CACHE_MB * 1024};
            CREATE TABLE facts (ref TEXT NOT NULL, kind INTEGER NOT NULL, at INTEGER NOT NULL,
                                data BLOB NOT NULL);
            CREATE TABLE aliases (alias TEXT PRIMARY KEY, ref TEXT NOT NULL);
        """)
        self._pending: list[tuple[str, int, int, bytes]] = []
        self._indexed = False
        self.added = 0

    def add(self, fact: Fact) -> None:
        self._pending.append(fact.row())
        if len(self._pending) >= BATCH:
            self.flush()

    def add_all(self, facts: Iterable[Fact]) -> None:
        for fact in facts:
            self.add(fact)

    def alias(self, provider_reference: str, reference: str) -> None:
        """The provider names the link ``reference`` by ``provider_reference``."""
        self.db.execute("INSERT OR IGNORE INTO aliases VALUES (?, ?)",
                        (provider_reference, reference))

    def flush(self) -> None:
        if self._pending:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO facts VALUES (?, ?, ?, ?)", self._pending)
            self.db.execute("COMMIT")
            self.added += len(self._pending)
            self._pending.clear()

    def _index(self) -> None:
        self.flush()
        if not self._indexed:
            self.db.execute("UPDATE facts SET ref = (SELECT ref FROM aliases "
                            "WHERE alias = facts.ref) WHERE ref IN (SELECT alias FROM aliases)")
            self.db.execute("CREATE INDEX IF NOT EXISTS by_ref ON facts (ref, kind, at)")
            self._indexed = True

    def reindex(self) -> None:
        """After more facts arrived (the providers' answers): index them too."""
        self._indexed = False
        self._index()

    def references(self, *, having: Iterable[Kind], without: Iterable[Kind] = ()) -> Iterator[
            tuple[str, list[Fact]]]:
        """Each link having any fact of ``having`` and none of ``without``, with those facts."""
        self._index()
        having_, without_ = [int(k) for k in having], [int(k) for k in without]
        query = (f"SELECT ref, kind, at, data FROM facts WHERE kind IN "
                 f"({','.join('?' * len(having_))})")
        args: list[int] = list(having_)
        if without_:
            query += (" AND ref NOT IN (SELECT ref FROM facts WHERE kind IN "
                      f"({','.join('?' * len(without_))}))")
            args += without_
        yield from _grouped(self.db.execute(query + " ORDER BY ref, kind, at", args))

    def links(self) -> Iterator[tuple[str, list[Fact]]]:
        """Every link's facts, one link at a time, in reference order."""
        self._index()
        yield from _grouped(self.db.execute(
            "SELECT ref, kind, at, data FROM facts ORDER BY ref, kind, at"))

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


def _grouped(rows: Iterable[tuple[str, int, int, bytes]]) -> Iterator[tuple[str, list[Fact]]]:
    current: str | None = None
    facts: list[Fact] = []
    for ref, kind, at, data in rows:
        if ref != current:
            if current is not None:
                yield current, facts
            current, facts = ref, []
        facts.append(Fact(ref, Kind(kind), at, orjson.loads(data)))
    if current is not None:
        yield current, facts
