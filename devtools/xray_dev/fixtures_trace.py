"""Trace-path fixtures shared by every tier: the pinned X-Ray daemon binary.

Register in tests/conftest.py (`pytest_plugins`) to use `xray_binary` outside tests/e2e; until
then tests/e2e/conftest.py imports it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xray_dev import tracepath


@pytest.fixture(scope="session")
def xray_binary(request: pytest.FixtureRequest) -> Path:
    """The pinned X-Ray daemon, built into .cache/bin by scripts/xray-daemon.sh (or found).

    The build's progress goes straight to the terminal: pytest captures fixture output, and a
    first build that takes a minute or more must not look like a hang."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")

    def progress(line: str) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(line)

    return tracepath.ensure_daemon(progress)
