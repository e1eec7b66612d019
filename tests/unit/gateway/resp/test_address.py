"""Redis URLs as the lean RESP client reads them: the forms the project and redis-py use."""

from __future__ import annotations

import ssl

import pytest

from gateway.resp import Address


def test_host_port_and_db_with_no_login() -> None:
    address = Address.from_url("redis://redis:6380/3")
    assert (address.host, address.port, address.db, address.path) == ("redis", 6380, 3, None)
    assert address.greeting() == [("SELECT", 3)]
    assert Address.from_url("redis://127.0.0.1:6379/0").greeting() == []
    assert Address.from_url("redis://localhost").port == 6379


def test_user_and_password_are_unquoted_and_sent_by_auth() -> None:
    address = Address.from_url("redis://gw:p%40ss@127.0.0.1:6379/0")
    assert address.greeting() == [("AUTH", "gw", "p@ss")]
    assert Address.from_url("redis://:secret@h/1").greeting() == [("AUTH", "secret"), ("SELECT", 1)]
    assert "secret" not in str(Address.from_url("redis://:secret@h/1"))


def test_tls_and_unix_sockets() -> None:
    tls = Address.from_url("rediss://h:6390/0").tls
    assert isinstance(tls, ssl.SSLContext) and tls.verify_mode == ssl.CERT_REQUIRED
    lax = Address.from_url("rediss://h/0?ssl_cert_reqs=none").tls
    assert lax is not None and lax.verify_mode == ssl.CERT_NONE
    sock = Address.from_url("unix:///run/redis.sock?db=2")
    assert (sock.path, sock.db, str(sock)) == ("/run/redis.sock", 2, "/run/redis.sock")


def test_what_it_does_not_support_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="scheme 'http'"):
        Address.from_url("http://h:6379")
    with pytest.raises(ValueError, match="protocol"):
        Address.from_url("redis://h:6379/0?protocol=3")
