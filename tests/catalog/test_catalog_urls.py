"""A catalog URL that cannot work is refused with an ooc error naming it, never its password."""

from __future__ import annotations

import socket

import pytest

from ooc.catalog import search
from ooc.errors import ConfigError, StoreError


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("catalog.sqlite", "catalog_url 'catalog.sqlite': expected a database URL"),
        ("sqlit:///x.db", "catalog_url 'sqlit:///x.db': Can't load plugin"),
        ("nodb://me:secret@host/x", r"catalog_url 'nodb://\*\*\*@host/x'"),
    ],
)
def test_a_malformed_catalog_url_is_a_config_error(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        search(catalog_url=url)
    assert "secret" not in str(caught.value)


def test_an_unreachable_database_is_a_store_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://ooc:secret@127.0.0.1:{port}/ooc"
    with pytest.raises(
        StoreError, match=rf"catalog .*ooc:\*\*\*@127.0.0.1:{port}/ooc: cannot open"
    ) as caught:
        search(catalog_url=url)
    assert "secret" not in str(caught.value)
