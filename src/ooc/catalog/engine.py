"""Connections to a catalog database: SQLite or PostgreSQL, migrated on first use, with retries.

SQLite runs in WAL mode with a busy timeout, and a writing transaction takes the write lock at
its start (``BEGIN IMMEDIATE``), so concurrent writers queue instead of failing half-way.
PostgreSQL serialises migrations with an advisory lock. Writes that still meet a locked
database, a deadlock or a concurrent insert of the same store are retried.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ooc.errors import ConfigError, StoreError

__all__ = ["HEAD", "engine_for", "migrate", "reading", "writing"]

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x6F6F63  # "ooc": the PostgreSQL advisory lock held while migrating
_SQLITE_BUSY_MS = 60_000
_ATTEMPTS = 8
_RETRIED_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock timeout


def _alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the shipped migrations, run on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _head() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None  # the migrations folder ships with ooc
    return head


HEAD = _head()
"""The revision the migrations shipped with this ooc bring a catalog to."""


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # transactions are begun by the "begin" hook below, not by the sqlite3 module
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("ooc_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def migrate(engine: Engine) -> str:
    """Bring the catalog at ``engine`` to :data:`HEAD` (creating it if empty); returns the revision.

    A catalog made before migrations existed (a lone ``volumes`` table) is upgraded in place.
    """
    with engine.execution_options(ooc_write=True).begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        current = MigrationContext.configure(connection).get_current_revision()
        if current != HEAD:
            command.upgrade(_alembic_config(connection), "head")
    return HEAD


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _forget_engines_after_fork() -> None:
    """A forked process must not use its parent's pooled connections: drop them unclosed."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_forget_engines_after_fork)


def engine_for(catalog_url: str) -> Engine:
    """The engine of ``catalog_url`` (one per process), its database migrated to :data:`HEAD`.

    Raises
    ------
    ConfigError
        If the URL is not a database URL SQLAlchemy can use (or its driver is not installed).
    StoreError
        If the database cannot be opened or migrated (naming the URL, without its password).
    """
    with _engines_lock:
        if catalog_url in _engines:
            return _engines[catalog_url]
        engine = _create(catalog_url)
        try:
            _retrying(lambda: migrate(engine))
        except DBAPIError as err:
            engine.dispose()
            shown = engine.url.render_as_string(hide_password=True)
            raise StoreError(f"catalog {shown}: cannot open or migrate it ({err.orig})") from err
        _engines[catalog_url] = engine
        return engine


def _create(catalog_url: str) -> Engine:
    expected = "a database URL such as 'sqlite:////abs/path/catalog.sqlite' or 'postgresql+psycopg://user@host/ooc'"
    if "://" not in catalog_url:
        raise ConfigError(f"catalog_url {catalog_url!r}: expected {expected}")
    try:
        engine = create_engine(catalog_url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as err:
        scheme, _, rest = catalog_url.partition("://")
        shown = f"{scheme}://***@{rest.rsplit('@', 1)[1]}" if "@" in rest else catalog_url
        raise ConfigError(f"catalog_url {shown!r}: {err}; expected {expected}") from None
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        _sqlite_events(engine)
    return engine


def _retryable(err: DBAPIError) -> bool:
    if isinstance(err, IntegrityError):  # two writers inserted the same store at once
        return True
    if not isinstance(err, OperationalError):
        return False
    sqlstate = getattr(err.orig, "sqlstate", None)
    message = str(err.orig).lower()
    return sqlstate in _RETRIED_SQLSTATES or "locked" in message or "busy" in message


def _retrying(work: Callable[[], T]) -> T:
    """Run ``work`` (a whole transaction), again after a short random wait if it was refused."""
    attempt = 0
    while True:
        try:
            return work()
        except DBAPIError as err:
            attempt += 1
            if attempt == _ATTEMPTS or not _retryable(err):
                raise
            time.sleep(random.uniform(0.05, 0.2) * 2**attempt)


def writing(catalog_url: str, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one writing transaction (SQLite: holding the write lock), with retries."""

    def attempt() -> T:
        engine = engine_for(catalog_url).execution_options(ooc_write=True)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    return _retrying(attempt)


@contextmanager
def reading(catalog_url: str) -> Iterator[Connection]:
    """A connection in a read transaction of the catalog at ``catalog_url``."""
    with engine_for(catalog_url).connect() as connection, connection.begin():
        yield connection
