"""Catalog sync fixtures: a signing key, the sample product images, a real catalog server on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.core.config import Config
from sync_agent.server.app import ServerSettings, create_app
from sync_agent.signing import generate_keypair
from tests.conftest import REPO
from tools.http_harness import ServerThread

TOKEN = "s3cret-token"
SAMPLE = REPO / "samples" / "shelf-catalog"


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def server(tmp_path, keys):
    """A fresh catalog server (work area + published tree under tmp_path), token auth on."""
    settings = ServerSettings(root=tmp_path / "server", signing_key=keys[0], token=TOKEN, config=Config())
    thread = ServerThread(create_app(settings)).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def catalog(sample_catalog_dir):
    from edge.core.catalog import load_catalog

    return load_catalog(sample_catalog_dir)


@pytest.fixture
def bench(tmp_path, keys, catalog):
    """A static bundle tree served over HTTP, a device config following it, and a way to publish."""
    from sync_agent.server.publisher import publish
    from sync_agent.server.storage import LocalStorage
    from sync_agent.signing import load_private_key

    storage = LocalStorage(tmp_path / "server" / "public")
    server = ServerThread(create_app(ServerSettings(root=tmp_path / "server", signing_key=keys[0], token="t"))).start()
    key = load_private_key(keys[0])
    config = device_config(tmp_path, server.url, keys[1])

    def publish_version(version: int, cat=catalog, signing_key=key):
        return publish(storage, cat, "shelf", signing_key, version)

    yield storage, config, publish_version
    server.stop()


@pytest.fixture
def tree(bench, keys):
    """The bench's static tree with v1 published and synced by a device."""
    storage, config, publish_version = bench
    publish_version(1)
    from sync_agent.agent import Agent
    from sync_agent.signing import load_private_key

    agent = Agent(config)
    agent.sync_once()
    return storage, config, agent, load_private_key(keys[0])


def product_images(product_id: str) -> list[Path]:
    return sorted((SAMPLE / product_id).glob("*.jpg"))


def device_config(tmp_path: Path, server_url: str, public_key: Path, **sync) -> Config:
    return Config.model_validate({"device": {"id": "dev", "data_dir": str(tmp_path / "device")}, "mqtt": {"enabled": False},
                                  "sync": {"server_url": server_url, "catalog_id": "shelf", "public_key_file": str(public_key),
                                           **sync}})


def copy_sample(to: Path, products: list[str]) -> Path:
    for pid in products:
        shutil.copytree(SAMPLE / pid, to / pid)
    return to
