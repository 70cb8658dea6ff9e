"""A PostgreSQL server that is down or unreachable: calls fail within a bounded time with
DatabaseUnavailable, saying why (the server's own reason) and where (the URL without its
password). The real server is never stopped: the app is pointed at a closed port, or reaches
the server through a proxy that the test cuts."""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner
from jobs_app import make_app
from tcp_proxy import TcpProxy

from conveyor import ConfigurationError, Conveyor, DatabaseUnavailable
from conveyor.cli import cli

pytest.importorskip("psycopg")

from conveyor.backends.postgres import CONNECT_TIMEOUT

pytestmark = pytest.mark.backends("postgresql")

SLACK = 1.5  # seconds of scheduling on a busy machine


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_is_down_fails_within_the_timeout_with_its_reason() -> None:
    port = closed_port()
    url = f"postgresql://conveyor:s3cret@127.0.0.1:{port}/jobs"
    app = Conveyor(url)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as caught:
            app.enqueue("t.add", 1, 2)
        assert time.monotonic() - started <= CONNECT_TIMEOUT + SLACK
    finally:
        app.close()
    message = str(caught.value)
    assert "Connection refused" in message  # the reason, from the server's address
    assert f"postgresql://conveyor@127.0.0.1:{port}/jobs" in message
    assert "s3cret" not in message
    # The command line: exit 1 with the same message, no traceback; the URL's
    # connect_timeout sets the bound.
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["enqueue", "t.add", "[1, 2]", "--url",
                                      f"{url}?connect_timeout=3&password=s3cret"])
    assert time.monotonic() - started <= 3 + SLACK
    assert result.exit_code == 1, result.output
    assert "Connection refused" in result.output
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_an_app_opened_while_the_server_was_up_gets_the_same_error(db_url: str) -> None:
    parts = urlsplit(db_url)
    assert parts.hostname is not None
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
    url = urlunsplit(parts._replace(netloc=netloc, query=parts.query + "&connect_timeout=3"))
    app = make_app(url)
    try:
        job = app.tasks["t.add"].enqueue(1, 2)
        proxy.stop()  # as the server going down: connections dropped, then refused
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="Connection refused"):
            app.tasks["t.add"].enqueue(3, 4)
        assert time.monotonic() - started <= 3 + SLACK
        with pytest.raises(DatabaseUnavailable, match="is unavailable"):
            job.refresh()
    finally:
        proxy.stop()
        app.close()



FAST = 3.0  # seconds: well under the default connect timeout of 10 s


def _with(server_url: str, what: str, name: str) -> str:
    """`server_url` with its user or its database replaced by `name`."""
    parts = urlsplit(server_url)
    user = name if what == "user" else parts.username or "postgres"
    netloc = f"{user}@{parts.hostname}:{parts.port or 5432}"
    path = f"/{name}" if what == "database" else parts.path
    return urlunsplit(parts._replace(netloc=netloc, path=path))


@pytest.mark.parametrize(("what", "reason"), [
    ("database", 'database "conveyor_no_such_db" does not exist'),
    ("user", 'role "conveyor_no_such_role" does not exist'),
])
def test_a_url_naming_no_database_or_role_fails_at_once_as_a_configuration_error(
        postgres_server: str, caplog: pytest.LogCaptureFixture, what: str, reason: str) -> None:
    url = _with(postgres_server, what, reason.split('"')[1])
    caplog.set_level(logging.WARNING)
    app = Conveyor(url)
    try:
        started = time.monotonic()
        with pytest.raises(ConfigurationError) as caught:
            app.enqueue("t.add", 1, 2)
        assert time.monotonic() - started <= FAST
    finally:
        app.close()
    assert reason in str(caught.value)
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text
    # The command line: a mistake in the URL is bad usage (exit 2), with the server's reason.
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["enqueue", "t.add", "[1, 2]", "--url", url])
    assert time.monotonic() - started <= FAST
    assert result.exit_code == 2, result.output
    assert reason in result.output
    assert "Traceback" not in result.output


def test_a_closed_port_fails_at_once_as_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    app = Conveyor(url)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="Connection refused"):
            app.enqueue("t.add", 1, 2)
        assert time.monotonic() - started <= FAST
    finally:
        app.close()
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.text
    result = CliRunner().invoke(cli, ["health", "--url", url])
    assert result.exit_code == 1, result.output
    assert "Connection refused" in result.output


def test_the_checkout_check_works_with_more_than_1024_files_open(db_url: str) -> None:
    """The pool looks at an idle connection's socket before handing it out: with a descriptor
    past what select() takes (an application with many files open), it still works."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    files = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    app = make_app(db_url)  # its connections come after the 1100 files: fd > 1024
    try:
        first = app.tasks["t.add"].enqueue(1, 2)
        second = app.tasks["t.add"].enqueue(3, 4)  # a checkout of an idle connection
        assert second.id == first.id + 1
    finally:
        app.close()
        for fd in files:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
