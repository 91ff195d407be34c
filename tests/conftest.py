"""Shared test helpers.

``require_tool`` is how a test asks for a system program (promtool, prometheus, chromium): on a
developer machine without it the test is skipped with a visible reason; in CI (``CI=true``) a missing
tool is a failure, because there a skip would hide an untested feature.
"""

from __future__ import annotations

import os
import shutil

import pytest


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
