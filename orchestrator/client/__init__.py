"""The one client of the orchestrator API, used by the SDK, the CLI and the workers (docs/sdk.md: the client).

Importing this package is cheap (no httpx, no Django): the transports load when a client is made.
"""

from orchestrator.client.client import ClientSettings, OrchestratorClient, get_client, use_in_process_client
from orchestrator.client.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServerError,
    ServerUnreachable,
    Unauthorized,
    install_excepthook,
)
from orchestrator.client.models import RunInfo, StateResult

__all__ = [
    "ClientError",
    "ClientSettings",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "OrchestratorClient",
    "RunInfo",
    "ServerError",
    "ServerUnreachable",
    "StateResult",
    "Unauthorized",
    "get_client",
    "install_excepthook",
    "use_in_process_client",
]


def release_database_connections() -> None:
    """Close the in-process client's database connections (see in_process.py)."""
    from orchestrator.client.in_process import release_database_connections as release

    release()
