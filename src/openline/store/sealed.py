"""Secrets at rest: values sealed with Fernet under a key derived from the process's secret key.

Columns typed :class:`SealedString` or :class:`SealedJSON` seal secrets on write and open them
on read, so every reader and writer that goes through SQLAlchemy sees plaintext and the
database file never holds it. A sealed value is stored as ``sealed:v1:<Fernet token>``;
any other string is legacy plaintext (written before migration 0004, or by a process without
a key) and is read as it is, then sealed the next time the row is written.

The key reaches the store from the composition root: ``Database(url, secret_key=...)``
registers a :class:`SecretBox` for its engine's dialect, which is what a column type sees.
A ``Database`` without a key writes plaintext and refuses to read a sealed value.

``key_checks`` holds one value sealed with the database's key: a process started with
another key fails at start-up (:func:`check_key`) instead of reading garbage later.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import JSON, Text, TypeDecorator

from openline.domain.errors import OpenlineError

PREFIX = "sealed:v1:"
#: what ``key_checks`` holds, sealed: opening it proves the key is the database's key
CHECK_NAME, CHECK_TEXT = "at_rest", "openline secrets at rest"
_INFO = b"openline/secrets-at-rest/v1"


class SecretKeyError(OpenlineError):
    """The secret key cannot open what the database holds (or there is no key at all)."""

    code = "secret_key_mismatch"


MISMATCH = ("The secret key does not match the key that sealed this database's secrets "
            "(webhook secrets, tool and configuration-endpoint headers). Start Openline with "
            "the key it first used: OPENLINE_SECRET_KEY, or the secret_key file of the data "
            "directory it ran with. Every node sharing a database needs the same key; "
            "rotating keys is not supported yet.")
NO_KEY = "A sealed secret was read, but this database handle was opened without a secret key."


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class SecretBox:
    """Seals and opens strings with Fernet (AES-128-CBC + HMAC-SHA256).

    The Fernet key is derived with HKDF-SHA256 from ``secret_key`` (any string, e.g.
    ``OPENLINE_SECRET_KEY``), under its own label: the same secret also signs links, and
    the two uses never share key material.
    """

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("an empty secret key cannot seal anything")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_INFO).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> str:
        """``plaintext`` sealed (a value already sealed is returned as it is)."""
        if is_sealed(plaintext):
            return plaintext
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, stored: str) -> str:
        """The plaintext of a sealed value; legacy plaintext is returned as it is."""
        if not is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError(MISMATCH) from exc


# One box per engine: a column type only sees the dialect of the connection it serves.
_BOXES: WeakKeyDictionary[Dialect, SecretBox] = WeakKeyDictionary()


def register(dialect: Dialect, box: SecretBox) -> None:
    """Make ``box`` seal and open the sealed columns of every connection of ``dialect``."""
    _BOXES[dialect] = box


def _seal(value: str, dialect: Dialect) -> str:
    box = _BOXES.get(dialect)
    return box.seal(value) if box is not None else value


def _open(value: str, dialect: Dialect) -> str:
    if not is_sealed(value):
        return value
    box = _BOXES.get(dialect)
    if box is None:
        raise SecretKeyError(NO_KEY)
    return box.open(value)


def map_paths(document: Any, paths: Sequence[str], fn: Callable[[str], str]) -> Any:
    """``document`` with ``fn`` applied to the strings at ``paths`` (a new object; the
    input is not changed). A path is dotted keys, ``*`` meaning every value of a mapping:
    ``configuration_endpoint.headers.*``. Missing keys and non-string leaves are skipped."""
    for path in paths:
        document = _map(document, tuple(path.split(".")), fn)
    return document


def _map(node: Any, path: tuple[str, ...], fn: Callable[[str], str]) -> Any:
    if not path:
        return fn(node) if isinstance(node, str) else node
    if not isinstance(node, dict):
        return node
    head, rest = path[0], path[1:]
    if head == "*":
        return {k: _map(v, rest, fn) for k, v in node.items()}
    if head not in node:
        return node
    return {**node, head: _map(node[head], rest, fn)}


class SealedString(TypeDecorator[str]):
    """A text column whose whole value is a secret (a webhook signing secret)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else _seal(value, dialect)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else _open(value, dialect)


class SealedJSON(TypeDecorator[Any]):
    """A JSON document in which the strings at ``paths`` are secrets (see :func:`map_paths`)."""

    impl = JSON
    cache_ok = True

    def __init__(self, paths: tuple[str, ...]) -> None:
        super().__init__()
        self.paths = paths

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return map_paths(value, self.paths, lambda s: _seal(s, dialect))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return map_paths(value, self.paths, lambda s: _open(s, dialect))


@dataclass(frozen=True)
class SealedColumn:
    """Where secrets live in one column: for sweeping plaintext left by older releases."""

    table: str
    keys: tuple[str, ...]
    column: str
    #: JSON paths (:func:`map_paths`); empty: the column is a secret string itself
    paths: tuple[str, ...] = ()


def seal_plaintext(connection: Connection, box: SecretBox,
                   columns: Sequence[SealedColumn], page: int = 500) -> int:
    """Seal every plaintext secret in ``columns`` (plain Core, no column types involved);
    returns how many rows changed. Run once per database, before ``key_checks`` is set."""
    changed = 0
    for spec in columns:
        kind: Any = JSON() if spec.paths else Text()
        table = sa.table(spec.table, *(sa.column(k) for k in spec.keys),
                         sa.column(spec.column, kind))
        value_col, key_cols = table.c[spec.column], [table.c[k] for k in spec.keys]
        offset = 0
        while True:
            rows = connection.execute(sa.select(*key_cols, value_col).order_by(*key_cols)
                                      .limit(page).offset(offset)).all()
            offset += page
            for row in rows:
                *keys, value = row
                if value is None:
                    continue
                sealed = (map_paths(value, spec.paths, box.seal) if spec.paths
                          else box.seal(value))
                if sealed != value:
                    where = sa.and_(*(c == k for c, k in zip(key_cols, keys, strict=True)))
                    connection.execute(table.update().where(where)
                                       .values({spec.column: sealed}))
                    changed += 1
            if len(rows) < page:
                break
    return changed


_CHECKS = sa.table("key_checks", sa.column("name"), sa.column("sealed"))


def write_check(connection: Connection, box: SecretBox) -> None:
    """Record that this database's secrets are sealed with ``box``'s key."""
    connection.execute(_CHECKS.insert().values(name=CHECK_NAME, sealed=box.seal(CHECK_TEXT)))


def check_key(connection: Connection, box: SecretBox, columns: Sequence[SealedColumn]) -> None:
    """At start-up: refuse a key other than the database's (:class:`SecretKeyError`).

    A database that has no check yet (its secrets were written by processes without a
    key) gets its plaintext sealed now, and the check written.
    """
    stored = connection.execute(sa.select(_CHECKS.c.sealed)
                                .where(_CHECKS.c.name == CHECK_NAME)).scalar()
    if stored is None:
        seal_plaintext(connection, box, columns)
        write_check(connection, box)
        return
    if box.open(str(stored)) != CHECK_TEXT:
        raise SecretKeyError(MISMATCH)
