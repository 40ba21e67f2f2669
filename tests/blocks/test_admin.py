"""Blocks in the admin: pick a type, fill the form made from its schema; secrets are password inputs that are
never shown back and, left empty on a change, keep their value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from apps.blocks import selectors, services
from apps.blocks.models import BlockDocument
from apps.deployments.services import deployment_upsert
from apps.flows.services import flow_get_or_create
from tests.blocks.support import flow_run_with_result_in

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/blocks/blockdocument/add/"
SECRET = "pa55-word-never-shown-91"


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(User.objects.create(username="root", is_staff=True, is_superuser=True))
    return client


def change_url(document: BlockDocument) -> str:
    return f"/admin/blocks/blockdocument/{document.pk}/change/"


def test_adding_starts_with_the_block_types_read_only(admin_client: Client) -> None:
    """The add page lists every type with its fields and a link to its form."""
    page = admin_client.get(ADD_URL)
    assert page.status_code == 200
    text = page.content.decode()
    for slug in ("secret", "json", "local-file-system", "remote-file-system", "webhook", "smtp"):
        assert f"?block_type={slug}" in text
    assert "password (secret)" in text and "An SMTP server" in text


def test_add_a_secret_block_through_the_form_and_never_see_it_again(admin_client: Client) -> None:
    """The form saves through the services (encrypted); the change page holds no trace of the value."""
    form = admin_client.get(f"{ADD_URL}?block_type=secret")
    assert form.status_code == 200 and 'type="password"' in form.content.decode()
    saved = admin_client.post(f"{ADD_URL}?block_type=secret", {"name": "db-password", "value": SECRET})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    document = BlockDocument.objects.get(block_type="secret", name="db-password")
    assert SECRET not in repr(document.data) and SECRET not in document.encrypted_secrets
    assert selectors.block_document_data(document=document, include_secrets=True) == {"value": SECRET}
    page = admin_client.get(change_url(document))
    assert page.status_code == 200
    assert SECRET not in page.content.decode() and "********" in page.content.decode()
    assert admin_client.get("/admin/blocks/blockdocument/").content.decode().count("db-password") >= 1


def test_a_change_with_the_secret_left_empty_keeps_it(admin_client: Client) -> None:
    document = services.block_document_create(
        block_type="smtp",
        name="mail",
        data={"host": "mail.example.com", "password": SECRET, "from_address": "ops@example.com"},
    )[0]
    page = admin_client.get(change_url(document)).content.decode()
    assert SECRET not in page and 'value="mail.example.com"' in page
    fields: dict[str, Any] = {
        "host": "smtp.example.com",
        "port": "465",
        "username": "",
        "password": "",
        "tls": "on",
        "from_address": "ops@example.com",
    }
    changed = admin_client.post(change_url(document), fields)
    assert changed.status_code == 302, changed.content.decode()[:3000]
    document.refresh_from_db()
    data = selectors.block_document_data(document=document, include_secrets=True)
    assert data["host"] == "smtp.example.com" and data["port"] == 465 and data["password"] == SECRET


def test_the_form_names_the_field_the_type_refuses(admin_client: Client) -> None:
    refused = admin_client.post(
        f"{ADD_URL}?block_type=webhook", {"name": "hook", "url": "ftp://nope", "method": "POST", "headers": ""}
    )
    assert refused.status_code == 200
    assert "must be an http:// or https:// URL" in refused.content.decode()
    assert not BlockDocument.objects.exists()
    services.block_document_create(block_type="webhook", name="hook", data={"url": "https://x.example"})
    taken = admin_client.post(
        f"{ADD_URL}?block_type=webhook", {"name": "hook", "url": "https://y.example", "method": "POST"}
    )
    assert taken.status_code == 200 and "already exists" in taken.content.decode()


def test_deleting_a_block_a_deployment_uses_is_refused_with_the_reason(admin_client: Client) -> None:
    document = services.block_document_create(
        block_type="remote-file-system", name="code", data={"basepath": "s3://bucket/code"}
    )[0]
    deployment_upsert(flow=flow_get_or_create(name="etl")[0], name="nightly", values={"storage_block": document.slug})
    response = admin_client.post(f"/admin/blocks/blockdocument/{document.pk}/delete/", {"post": "yes"}, follow=True)
    assert "etl/nightly" in response.content.decode()
    assert BlockDocument.objects.filter(pk=document.pk).exists()


def test_deleting_a_block_that_holds_results_is_refused_naming_the_runs(admin_client: Client) -> None:
    document = services.block_document_create(
        block_type="remote-file-system", name="lake", data={"basepath": "s3://bucket/results"}
    )[0]
    flow_run_with_result_in(document.slug, "nightly-load")
    page = admin_client.get(change_url(document)).content.decode()
    assert "Holds results of" in page and "flow run &#x27;nightly-load&#x27;" in page
    response = admin_client.post(f"/admin/blocks/blockdocument/{document.pk}/delete/", {"post": "yes"}, follow=True)
    assert "holds the results of flow run &#x27;nightly-load&#x27;" in response.content.decode()
    assert BlockDocument.objects.filter(pk=document.pk).exists()


def test_a_viewer_sees_the_block_masked_and_cannot_add(client: Client) -> None:
    """Viewers read configuration in the admin; secret values are for no page at all."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # the role groups get their permissions after migrate
    viewer = User.objects.create(username="viewer", is_staff=True)
    viewer.groups.add(Group.objects.get(name="Viewer"))
    client.force_login(viewer)
    document = services.block_document_create(block_type="secret", name="db", data={"value": SECRET})[0]
    page = client.get(change_url(document))
    assert page.status_code == 200 and SECRET not in page.content.decode()
    assert client.get(ADD_URL).status_code in (302, 403)


@pytest.mark.parametrize(
    "slug", ["secret", "json", "local-file-system", "remote-file-system", "webhook", "slack-webhook", "smtp"]
)
def test_every_type_has_a_form_made_from_its_schema(admin_client: Client, slug: str) -> None:
    """Strings, integers, booleans, enums and JSON each get their input; each secret field a password input."""
    from orchestrator.block_types import BLOCK_TYPES

    page = admin_client.get(f"{ADD_URL}?block_type={slug}")
    assert page.status_code == 200
    text = page.content.decode()
    block_type = BLOCK_TYPES[slug]
    for name in block_type.model_fields:
        assert f'name="{name}"' in text, name
    assert text.count('type="password"') == len(block_type.secret_fields())
    if slug == "webhook":
        assert '<select name="method"' in text
    if slug == "smtp":
        assert 'type="number" name="port"' in text and 'type="checkbox" name="tls"' in text


def test_adding_a_remote_file_system_with_secret_settings(admin_client: Client) -> None:
    """A secret mapping is typed as JSON into a password input, and stored encrypted."""
    settings = {"key": "AKIA-admin", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    saved = admin_client.post(
        f"{ADD_URL}?block_type=remote-file-system",
        {"name": "lake", "basepath": "s3://bucket/prefix", "settings": json.dumps(settings)},
    )
    assert saved.status_code == 302, saved.content.decode()[:3000]
    document = BlockDocument.objects.get(name="lake")
    assert "AKIA-admin" not in json.dumps(document.data)
    assert selectors.block_document_data(document=document, include_secrets=True)["settings"] == settings
    page = admin_client.get(change_url(document)).content.decode()
    assert "AKIA-admin" not in page and "127.0.0.1:9000" not in page
