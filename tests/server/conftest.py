"""The ``service`` fixture: a seeded service (see service_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fixtures import Service, seed

from tiptriage.server.app import create_app
from tiptriage.server.auth import Authenticator
from tiptriage.store import Store


@pytest.fixture
def service(store: Store, tmp_path: Path) -> Service:
    split, secrets = seed(store, tmp_path)
    return Service(store, create_app(store), Authenticator(store), split, secrets)
