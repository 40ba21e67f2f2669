"""The block client methods over HTTP against a real server: what the SDK relies on, with admin and write keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from orchestrator.client import Conflict, Forbidden, InvalidInput, NotFound, OrchestratorClient
from tests.support.cli import run_orchestrator
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.e2e

SECRET = "over-http-secret-3141"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(home=tmp_path_factory.mktemp("blocks-server")) as running:
        yield running


def test_client_block_methods_over_http(server: RunningServer, tmp_path: Path) -> None:
    """Admin keys may read secrets; write keys save and read masked, and are told why include_secrets is refused."""
    admin = OrchestratorClient(server.api_url, server.api_key, retries=0)
    write_key = admin.create_api_key("blocks-writer", scope="write")["key"]
    writer = OrchestratorClient(server.api_url, write_key, retries=0)

    assert [row["slug"] for row in writer.read_block_types()][:2] == ["secret", "json"]
    saved = writer.create_block_document("secret", "db-password", {"value": SECRET})
    assert saved["data"] == {"value": "********"}
    with pytest.raises(Conflict, match="secret/db-password"):
        writer.create_block_document("secret", "db-password", {"value": "again"})
    assert writer.create_block_document("secret", "db-password", {"value": SECRET}, overwrite=True)["id"] == saved["id"]
    assert writer.read_block_document("secret", "db-password")["data"] == {"value": "********"}
    with pytest.raises(Forbidden, match="include_secrets=true needs admin scope"):
        writer.read_block_document("secret", "db-password", include_secrets=True)
    assert admin.read_block_document("secret", "db-password", include_secrets=True)["data"] == {"value": SECRET}
    with pytest.raises(InvalidInput, match="data.port"):
        writer.create_block_document("smtp", "mail", {"host": "h", "port": -1, "from_address": "a@b.c"})
    with pytest.raises(NotFound):
        writer.read_block_document("secret", "absent")

    updated = writer.update_block_document(saved["id"], {"value": "********"})
    assert updated["data"] == {"value": "********"}
    assert admin.read_block_document("secret", "db-password", include_secrets=True)["data"] == {"value": SECRET}
    assert [row["name"] for row in writer.read_block_documents(block_type="secret")] == ["db-password"]

    client_env = {**server.client_env(tmp_path / "client"), "ORCHESTRATOR_API_KEY": write_key}
    listed = run_orchestrator("block", "ls", env=client_env)
    assert listed.returncode == 0 and "db-password" in listed.stdout and SECRET not in listed.stdout

    if server.database_url.startswith("sqlite"):
        database = Path(urlsplit(server.database_url).path)
        held = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
        assert b"db-password" in held and SECRET.encode() not in held

    writer.delete_block_document(saved["id"])
    assert writer.read_block_documents() == []
    admin.close()
    writer.close()
