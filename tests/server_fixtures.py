"""Pytest fixtures around the fake_openai test server.

Use from conftest.py with ``pytest_plugins = ["server_fixtures"]`` (tests/ on sys.path) or
``from server_fixtures import *``.

Fixtures:
  openai_server  session-scoped running OpenAIServer
  server         the same server after reset(); at teardown asserts no request body broke the schema
                 (unless the test is marked ``@pytest.mark.allow_schema_errors``)
  openai_env     sets OPENAI_BASE_URL / OPENAI_API_KEY (FAKE_KEY) and removes OPENAI_ORG_ID,
                 OPENAI_PROJECT_ID, VISION_MAGIC_MODEL; yields the server
"""

from __future__ import annotations

import pytest

from fake_openai import OpenAIServer

__all__ = ["FAKE_KEY", "openai_env", "openai_server", "pytest_configure", "server"]

FAKE_KEY = "sk-test-VMFAKEKEY-0123456789abcdef"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_schema_errors: the test expects the server to reject a request body"
    )


@pytest.fixture(scope="session")
def openai_server():
    with OpenAIServer() as srv:
        yield srv


@pytest.fixture
def server(request, openai_server):
    openai_server.reset()
    yield openai_server
    errors = list(openai_server.schema_errors)
    openai_server.reset()  # also aborts requests the test left hanging
    if request.node.get_closest_marker("allow_schema_errors") is None:
        assert errors == [], f"request bodies rejected by the OpenAI schema: {errors}"


@pytest.fixture
def openai_env(monkeypatch, server):
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "VISION_MAGIC_MODEL"):
        monkeypatch.delenv(name, raising=False)
    yield server
