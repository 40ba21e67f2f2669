"""The permission matrix: every operation of the OpenAPI schema x every kind of credential (docs/security.md).

The operations come from drf-spectacular's generator, as `/api/schema/` serves it (a test checks the two agree),
so a new endpoint is in the matrix the day it is written. For each (operation, credential):
- no key, a malformed header, an unknown, revoked or expired key: 401, the API's JSON error, `WWW-Authenticate`;
- a `read` key: 403 on anything but GET; a `write` key: 403 on admin-only views (`required_scope = "admin"`);
- otherwise neither 401 nor 403 (a 404 or 400 is fine: the request was let in), and never a 500;
- a refused request changes no row of any table (a digest of each table's rows, before and after).

The objects the paths name are made once for the module, in a transaction rolled back at its end; each test runs
in a savepoint inside it, so an allowed DELETE does not take them from the next test.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.urls import resolve
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, Scope
from apps.accounts.services import api_key_create, api_key_revoke
from apps.blocks.services import block_document_create
from apps.concurrency.services import concurrency_limit_create
from apps.deployments.services import deployment_schedule_create, deployment_upsert
from apps.flows.services import flow_get_or_create
from apps.runs import services as run_services
from apps.work_pools.services import work_pool_create, work_queue_create
from tests.api.support import assert_error

OPEN_PATHS = {"/api/health/"}
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the schema's template, e.g. /api/flows/{id}/
    has_body: bool

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def schema_operations(schema: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method.upper(), path, "requestBody" in operation)
        for path, operations in schema["paths"].items()
        if path not in OPEN_PATHS
        for method, operation in operations.items()
        if method in HTTP_METHODS
    ]


OPERATIONS = schema_operations(SchemaGenerator().get_schema(request=None, public=True))

# Credentials refused before any scope is looked at (401), then the three scopes.
REFUSED = ["no key", "Bearer alone", "Basic xyz", "key with spaces", "unknown key", "revoked key", "expired key"]
SCOPES = [Scope.READ, Scope.WRITE, Scope.ADMIN]
CREDENTIALS = REFUSED + [f"{scope} key" for scope in SCOPES]

MATRIX_SIZE = (
    f"{len(OPERATIONS)} operations x {len(CREDENTIALS)} credentials = {len(OPERATIONS) * len(CREDENTIALS)} cases"
)


@dataclass
class World:
    """One of every object a path can name, and a header for every credential."""

    path_values: dict[tuple[str, str], str]
    authorization: dict[str, str | None]
    secrets: list[str]


def _make_world() -> World:
    flow = flow_get_or_create(name="matrix-flow")[0]
    flow_run = run_services.flow_run_create(flow=flow, name="matrix-run")[0]
    task_run = run_services.task_run_create(flow_run=flow_run, task_key="matrix.task")[0]
    pool = work_pool_create(name="matrix-pool")
    queue = work_queue_create(pool=pool, name="matrix-queue")
    deployment = deployment_upsert(
        flow=flow, name="matrix-deployment", values={"entrypoint": "flows/matrix.py:flow", "paused": True}
    )[0]
    schedule = deployment_schedule_create(deployment=deployment, schedule={"interval": 3600.0, "timezone": "UTC"})
    limit = concurrency_limit_create(tag="matrix-tag", limit=1)
    spare_key = api_key_create(name="matrix-spare", scope=Scope.READ)[0]
    block = block_document_create(block_type="secret", name="matrix-secret", data={"value": "matrix"})[0]

    keys = {f"{scope} key": api_key_create(name=f"matrix-{scope}", scope=scope)[1] for scope in SCOPES}
    revoked = api_key_create(name="matrix-revoked", scope=Scope.ADMIN)[1]
    api_key_revoke(name="matrix-revoked")
    expired_row, expired = api_key_create(name="matrix-expired", scope=Scope.ADMIN, expires_in_days=1)
    ApiKey.objects.filter(pk=expired_row.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    unknown = "orch_" + "x" * 43
    authorization: dict[str, str | None] = {
        "no key": None,
        "Bearer alone": "Bearer",
        "Basic xyz": "Basic xyz",
        "key with spaces": f"Bearer {keys['admin key'][:20]} {keys['admin key'][20:]}",
        "unknown key": f"Bearer {unknown}",
        "revoked key": f"Bearer {revoked}",
        "expired key": f"Bearer {expired}",
        **{name: f"Bearer {key}" for name, key in keys.items()},
    }
    path_values = {
        ("api_keys", "name"): spare_key.name,
        ("block_documents", "id"): str(block.id),
        ("block_documents", "block_type"): block.block_type,
        ("block_documents", "name"): block.name,
        ("block_types", "slug"): "secret",
        ("concurrency_limits", "tag"): limit.tag,
        ("deployments", "id"): str(deployment.id),
        ("deployments", "schedule_id"): str(schedule.id),
        ("flow_runs", "id"): str(flow_run.id),
        ("flow_runs", "run_id"): str(flow_run.id),
        ("flows", "id"): str(flow.id),
        ("task_runs", "id"): str(task_run.id),
        ("work_pools", "name"): pool.name,
        ("work_pools", "queue_name"): queue.name,
    }
    return World(path_values, authorization, secrets=[*keys.values(), revoked, expired, unknown])


@pytest.fixture(scope="module")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    with django_db_blocker.unblock():
        with transaction.atomic():
            yield _make_world()
            transaction.set_rollback(True)


@pytest.fixture(scope="module")
def client() -> APIClient:
    return APIClient()  # one for the module: a new client reloads the middleware on its first request


def concrete_path(operation: Operation, world: World) -> str:
    """The schema's path with its parameters filled: a real object where the matrix made one, else a random id."""
    collection = operation.path.removeprefix("/api/").split("/")[0]
    path = operation.path
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        value = world.path_values.get((collection, path[start + 1 : end]), str(uuid.uuid4()))
        path = path[:start] + value + path[end + 1 :]
    return path


def needed_scope(path: str, method: str) -> str:
    view = resolve(path).func
    required = getattr(getattr(view, "cls", None), "required_scope", None)
    if required:
        return str(required)
    return Scope.READ if method == "GET" else Scope.WRITE


def expected_status(credential: str, needed: str) -> int | None:
    """401 or 403 for a refused request, None for one that must be let in."""
    if credential in REFUSED:
        return 401
    rank = {Scope.READ: 1, Scope.WRITE: 2, Scope.ADMIN: 3}
    return 403 if rank[credential.removesuffix(" key")] < rank[needed] else None


def database_picture() -> dict[str, str]:
    """A digest of every row of every table (the ORM's and the others), by table: any insert, update or delete
    changes one. PostgreSQL digests each table itself, in one round trip; SQLite, in this process, is read."""
    tables = sorted(connection.introspection.table_names())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                " UNION ALL ".join(
                    f"SELECT '{table}', CONCAT(COUNT(*), ':', SUM(hashtext(t::text)::bigint))"
                    f" FROM {connection.ops.quote_name(table)} t"
                    for table in tables
                )
            )
            return dict(cursor.fetchall())
        picture = {}
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows = sorted(repr(row) for row in cursor.fetchall())
            picture[table] = hashlib.md5("|".join(rows).encode()).hexdigest()
        return picture


@pytest.fixture(scope="module")
def picture_before(world: World, django_db_blocker: Any) -> dict[str, str]:
    """The database as every test starts it (each rolls back to it)."""
    with django_db_blocker.unblock():
        return database_picture()


@pytest.fixture
def send(client: APIClient, world: World, db: None) -> Callable[[Operation, str], Any]:
    def send(operation: Operation, credential: str) -> Any:
        header = world.authorization[credential]
        extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
        body = "{}" if operation.has_body else None  # a 400 for most: enough to show the request was let in
        return client.generic(
            operation.method, concrete_path(operation, world), data=body, content_type="application/json", **extra
        )

    return send


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_permission_matrix(
    operation: Operation, credential: str, send: Callable, world: World, picture_before: dict[str, str]
) -> None:
    """Each credential gets exactly its due on each operation; what is refused writes nothing."""
    expected = expected_status(credential, needed_scope(concrete_path(operation, world), operation.method))
    response = send(operation, credential)
    if expected is None:
        assert response.status_code not in (401, 403), (response.status_code, response.content[:300])
        assert response.status_code < 500, (response.status_code, response.content[:300])
        return
    body = assert_error(response, expected)
    if expected == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers
    # No key, nor a piece of one (the key with spaces is cut in two), in the answer.
    assert not any(secret[5:20] in response.content.decode() for secret in world.secrets), body
    picture = database_picture()
    changed = sorted(
        table for table in picture.keys() | picture_before.keys() if picture.get(table) != picture_before.get(table)
    )
    assert not changed, f"{operation} with {credential} changed the tables {changed}"


def test_matrix_size(capsys: pytest.CaptureFixture[str]) -> None:
    """The size the README's closing note quotes, shown in the run's output (not from an xdist worker)."""
    with capsys.disabled():
        print(f"\npermission matrix: {MATRIX_SIZE}")
    assert len(OPERATIONS) >= 60 and len(CREDENTIALS) == 10


def test_matrix_covers_what_the_schema_endpoint_serves(client: APIClient, world: World, db: None) -> None:
    """The matrix is built from the generator; `/api/schema/` serves the same operations."""
    response = client.get("/api/schema/", {"format": "json"}, HTTP_AUTHORIZATION=world.authorization["admin key"])
    assert response.status_code == 200, response.content[:300]
    schema = json.loads(response.content)
    assert sorted(map(str, schema_operations(schema))) == sorted(map(str, OPERATIONS))
    # Swagger UI's Authorize button: the schema says how to send a key.
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key (`orchestrator api-key create NAME`); scopes read, write and admin",
    }


def test_what_answers_without_a_key(client: APIClient, db: None) -> None:
    """Open without a key: the health check only (for load balancers). The schema and its docs page are not
    operations of the schema, so the matrix does not cover them: they need a key (or a session) like the rest."""
    assert client.get("/api/health/").status_code == 200
    assert client.get("/api/schema/").status_code == 401
    assert client.get("/api/docs/").status_code == 401
