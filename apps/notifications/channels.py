"""Sending one notification through its policy's block: a webhook (JSON, with an Idempotency-Key), a
Slack-compatible webhook (`{"text": ...}`) or an SMTP server. Every network call has a timeout; every failure is
a ChannelError of one readable line."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings

from apps.blocks.encryption import CannotDecrypt
from apps.blocks.models import BlockDocument
from apps.blocks.selectors import block_document_data

if TYPE_CHECKING:
    import httpx

_http_lock = threading.Lock()
_http: httpx.Client | None = None


def _http_client() -> httpx.Client:
    """One client per process, shared by the sender and test sends (thread-safe): a new client per call builds a
    TLS context each time, which was most of a send's time."""
    global _http
    import httpx  # on first use: a server process that never notifies does not hold it

    with _http_lock:
        if _http is None:
            _http = httpx.Client(follow_redirects=False)
        return _http


class ChannelError(Exception):
    """The channel refused or could not be reached; the message is one line."""


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _answered(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        body = " ".join(response.text[:200].split())
        raise ChannelError(f"{what} answered {response.status_code}{': ' + body if body else ''}")


def webhook_payload(context: dict[str, Any], message: str, policy_name: str) -> dict[str, Any]:
    return {
        "event_id": context.get("event_id"),
        "policy": policy_name,
        "message": message,
        "flow_run": {
            "id": context.get("flow_run_id"),
            "name": context.get("flow_run_name"),
            "url": context.get("flow_run_url"),
            "flow": context.get("flow_name"),
            "deployment": context.get("deployment_name") or None,
            "work_pool": context.get("work_pool_name") or None,
        },
        "state": {
            "type": context.get("state_type"),
            "name": context.get("state_name"),
            "message": context.get("state_message"),
            "timestamp": context.get("state_time"),
        },
    }


def channel_send(
    *,
    block: BlockDocument,
    context: dict[str, Any],
    message: str,
    policy_name: str,
    email_to: list[str],
    idempotency_key: str,
) -> str:
    """Send the notification; returns a short description of what was done (ChannelError on failure)."""
    import httpx

    timeout = settings.ORCHESTRATOR_NOTIFICATIONS_TIMEOUT_SECONDS
    try:
        data = block_document_data(document=block, include_secrets=True)
    except CannotDecrypt as exc:
        raise ChannelError(f"cannot read block {block.slug}: {exc}") from exc
    if block.block_type == "webhook":
        headers = {**(data.get("headers") or {}), "Idempotency-Key": idempotency_key}
        payload = webhook_payload(context, message, policy_name)
        method = data.get("method") or "POST"
        what = f"webhook {method} {data['url']}"
        try:
            response = _http_client().request(
                method,
                data["url"],
                json=None if method == "GET" else payload,
                params={"message": message, "event_id": idempotency_key} if method == "GET" else None,
                headers=headers,
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"{what} failed: {_cause(exc)}") from exc
        _answered(response, what)
        return f"{what}: {response.status_code}"
    if block.block_type == "slack-webhook":
        try:
            response = _http_client().post(
                data["url"], json={"text": message}, headers={"Idempotency-Key": idempotency_key}, timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"slack webhook {block.slug} failed: {_cause(exc)}") from exc
        _answered(response, f"slack webhook {block.slug}")
        return f"slack webhook {block.slug}: {response.status_code}"
    if block.block_type == "smtp":
        return _mail(data, context, message, email_to, timeout)
    raise ChannelError(f"block {block.slug} is not a channel (use a webhook, slack-webhook or smtp block)")


def _mail(data: dict[str, Any], context: dict[str, Any], body: str, email_to: list[str], timeout: float) -> str:
    import smtplib
    import ssl
    from email.message import EmailMessage

    if not email_to:
        raise ChannelError("the policy has no email_to recipients")
    mail = EmailMessage()
    mail["From"] = data["from_address"]
    mail["To"] = ", ".join(email_to)
    mail["Subject"] = f"Flow run {context.get('flow_run_name')} is {context.get('state_name')}"
    if context.get("event_id"):
        mail["X-Idempotency-Key"] = str(context["event_id"])
    mail.set_content(body)
    where = f"{data['host']}:{data['port']}"
    try:
        with smtplib.SMTP(data["host"], data["port"], timeout=timeout) as connection:
            if data.get("tls"):
                connection.starttls(context=ssl.create_default_context())
            if data.get("username"):
                connection.login(data["username"], data.get("password") or "")
            connection.send_message(mail, to_addrs=email_to)
    except (OSError, smtplib.SMTPException) as exc:
        raise ChannelError(f"cannot send mail through {where}: {_cause(exc)}") from exc
    return f"mail to {', '.join(email_to)} through {where}"
