"""Shared test helpers.

``require_tool`` is how a test asks for a system program (promtool, prometheus, chromium): on a
developer machine without it the test is skipped with a visible reason; in CI (``CI=true``) a missing
tool is a failure, because there a skip would hide an untested feature.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.postgres import Cluster, find_binaries


def require_tool(*names: str) -> str:
    """Return the path of the first of ``names`` found on PATH, or skip/fail as described above."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    msg = f"needs {' or '.join(names)} on PATH (Debian: apt-get install {names[0]})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One real PostgreSQL server for the whole run (initdb costs seconds); tests that need a clean
    database take :func:`postgres` instead."""
    bindir = find_binaries()
    if bindir is None:
        msg = "needs PostgreSQL's initdb/postgres (Debian: apt-get install postgresql)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {msg}")
        pytest.skip(msg)
    # not under pytest's basetemp: that is 0700 and the server may run as an unprivileged user
    root = Path(tempfile.mkdtemp(prefix="carmetrics-pg-"))
    root.chmod(0o711)
    cluster = Cluster(bindir, root / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres(postgres_cluster: Cluster) -> Cluster:
    """The session's PostgreSQL server with an empty ``carmetrics`` database."""
    postgres_cluster.reset()
    return postgres_cluster
