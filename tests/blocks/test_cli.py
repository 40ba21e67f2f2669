"""`orchestrator block ...` and `deploy --storage BLOCK`: tables, masked inspection, one-line errors."""

from __future__ import annotations

import textwrap
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.blocks import services
from apps.blocks.models import BlockDocument
from tests.support.cli import orchestrator_env, run_orchestrator
from tests.support.server import sqlite_pass_only

SECRET = "cli-secret-value-5521"


def block(*args: str) -> str:
    out = StringIO()
    call_command("block", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_block_type_ls_lists_every_type_with_its_secret_fields() -> None:
    text = block("type", "ls")
    for slug in ("secret", "json", "local-file-system", "remote-file-system", "webhook", "smtp"):
        assert slug in text
    assert "password (secret)" in text and "headers (secret)" in text


@pytest.mark.django_db(transaction=True)  # the in-process client reads committed rows
def test_block_ls_inspect_and_delete() -> None:
    """The everyday verbs; a secret never reaches the terminal."""
    services.block_document_create(block_type="secret", name="db-password", data={"value": SECRET})
    services.block_document_create(block_type="json", name="settings", data={"value": {"retries": 3}})
    listed = block("ls")
    assert "db-password" in listed and "settings" in listed and SECRET not in listed and "********" in listed
    only = block("ls", "--type", "json")
    assert "settings" in only and "db-password" not in only
    inspected = block("inspect", "secret/db-password")
    assert "block:    secret/db-password" in inspected and '"value": "********"' in inspected
    assert SECRET not in inspected
    assert block("delete", "secret/db-password").strip() == "Deleted block secret/db-password."
    assert not BlockDocument.objects.filter(name="db-password").exists()


FLOW_FILE = textwrap.dedent(
    """
    from orchestrator import flow


    @flow(name="greeter")
    def greet() -> str:
        return "hello"
    """
)

CREATE_BLOCK = (
    "import django, os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'orchestrator.settings'; django.setup(); "
    "from orchestrator.client import get_client; "
    "get_client().create_block_document('local-file-system', 'code', {'basepath': sys.argv[1]})"
)

READ_STORAGE = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'orchestrator.settings'; django.setup(); "
    "from orchestrator.client import get_client; "
    "deployment = get_client().read_deployment('greeter/stored'); "
    "print(deployment['storage_block'], deployment['storage_path'])"
)


@sqlite_pass_only
def test_cli_errors_are_one_line_and_deploy_checks_its_storage_block(tmp_path: Path) -> None:
    """An unknown block (inspect, delete, deploy --storage) is one line naming it; once it exists deploy uploads the
    flow's folder to it and records it."""
    import subprocess
    import sys

    env = orchestrator_env(tmp_path / "home")
    assert run_orchestrator("server", "database", "upgrade", env=env).returncode == 0
    missing = run_orchestrator("block", "inspect", "secret/absent", env=env)
    assert missing.returncode == 1 and missing.stderr.strip() == "error: no block secret/absent", missing.stderr
    malformed = run_orchestrator("block", "delete", "absent", env=env)
    assert malformed.returncode == 1 and malformed.stderr.count("\n") == 1 and "TYPE/NAME" in malformed.stderr
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text(FLOW_FILE)
    deploy = ("deploy", "flows.py:greet", "--name", "stored", "--pool", "local", "--storage", "local-file-system/code")
    refused = run_orchestrator(*deploy, env=env, cwd=project)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("error: no block 'local-file-system/code'; create it"), refused.stderr
    assert "greeter/stored" not in run_orchestrator("deployment", "ls", env=env).stdout
    store = tmp_path / "store"
    created = subprocess.run(
        [sys.executable, "-c", CREATE_BLOCK, str(store)], env=env, capture_output=True, text=True, cwd=project
    )
    assert created.returncode == 0, created.stderr
    deployed = run_orchestrator(*deploy, env=env, cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    recorded = subprocess.run([sys.executable, "-c", READ_STORAGE], env=env, capture_output=True, text=True)
    block, prefix = recorded.stdout.split()
    assert block == "local-file-system/code", recorded.stderr
    assert (store / prefix / "flows.py").read_text() == FLOW_FILE
    inspected = run_orchestrator("deployment", "inspect", "greeter/stored", env=env)
    assert "local-file-system/code" in inspected.stdout and prefix in inspected.stdout, inspected.stderr
    in_use = run_orchestrator("block", "delete", "local-file-system/code", env=env)
    assert in_use.returncode == 1 and "greeter/stored" in in_use.stderr and in_use.stderr.count("\n") == 1
    types = run_orchestrator("block", "type", "ls", env=env)
    assert types.returncode == 0 and "remote-file-system" in types.stdout
