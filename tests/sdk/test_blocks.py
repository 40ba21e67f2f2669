"""The SDK's blocks (orchestrator.blocks): file systems against a real S3 server and a real folder, the webhook and
SMTP blocks against real receivers on loopback, and save/load through the API client, in-process and over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.blocks import (
    JSON,
    SMTP,
    BlockError,
    BlockNotFound,
    BlockStorageError,
    LocalFileSystem,
    RemoteFileSystem,
    Secret,
    Webhook,
)
from tests.support.cli import orchestrator_env
from tests.support.s3 import S3Server, free_port

# -- file systems -------------------------------------------------------------------------------------------------


def test_remote_file_system_writes_and_reads_objects_in_s3(s3: S3Server):
    """write_path puts an object under the basepath and returns its URL; read_path gets the same bytes back."""
    lake = RemoteFileSystem(basepath=s3.url("lake"), settings=s3.settings)

    url = lake.write_path("daily/report.csv", b"a,b\n1,2\n")

    assert url == f"s3://{s3.bucket}/lake/daily/report.csv"
    assert s3.keys() == ["lake/daily/report.csv"]
    assert s3.read("lake/daily/report.csv") == b"a,b\n1,2\n"
    assert lake.read_path("daily/report.csv") == b"a,b\n1,2\n"
    assert lake.read_path("/daily/report.csv") == b"a,b\n1,2\n"  # a leading slash stays under the basepath


def test_remote_file_system_errors_name_the_path_and_the_cause_in_one_line(s3: S3Server):
    """A missing object or a missing bucket is one line naming the URL, not a botocore traceback."""
    lake = RemoteFileSystem(basepath=s3.url("lake"), settings=s3.settings)
    with pytest.raises(BlockStorageError) as missing:
        lake.read_path("nothing-here")
    assert str(missing.value).startswith(f"cannot read s3://{s3.bucket}/lake/nothing-here: FileNotFoundError")
    assert "\n" not in str(missing.value)

    no_bucket = RemoteFileSystem(basepath="s3://no-such-bucket-here/x", settings=s3.settings)
    with pytest.raises(BlockStorageError, match=r"^cannot write s3://no-such-bucket-here/x/a: ") as refused:
        no_bucket.write_path("a", b"1")
    assert "\n" not in str(refused.value)


def test_an_unreachable_remote_file_system_fails_with_the_storage_error():
    """Nothing listens at the endpoint: the write fails with one line naming the URL (no hang, no traceback)."""
    unreachable = RemoteFileSystem(basepath="s3://lake/results", settings=unreachable_settings())
    with pytest.raises(BlockStorageError, match=r"^cannot write s3://lake/results/a: ") as failed:
        unreachable.write_path("a", b"1")
    assert "\n" not in str(failed.value)
    assert "EndpointConnectionError: Could not connect to the endpoint URL" in str(failed.value)


def unreachable_settings() -> dict[str, Any]:
    """The storage options of an S3 endpoint where nothing listens, with botocore's retries cut short."""
    return {
        "key": "k",
        "secret": "s",
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}"},
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
    }


def test_a_remote_file_system_with_an_unknown_scheme_says_so():
    """A basepath whose scheme fsspec does not know is refused when the block is used, naming the basepath."""
    odd = RemoteFileSystem(basepath="nosuchscheme://bucket/x")
    with pytest.raises(BlockStorageError, match=r"^cannot open nosuchscheme://bucket/x: ValueError: "):
        odd.write_path("a", b"1")


def test_local_file_system_writes_through_a_temporary_file_and_reads_back(tmp_path: Path):
    """A local write makes the folders, leaves no temporary file and returns the full path."""
    folder = LocalFileSystem(basepath=str(tmp_path / "shared"))

    written = folder.write_path("nested/out.bin", b"\x00\x01")

    assert written == str(tmp_path / "shared" / "nested" / "out.bin")
    assert sorted(path.name for path in (tmp_path / "shared" / "nested").iterdir()) == ["out.bin"]
    assert folder.read_path("nested/out.bin") == b"\x00\x01"


def test_local_file_system_errors_name_the_path(tmp_path: Path):
    """A basepath that is a file cannot hold files: the error names the target path and the cause."""
    (tmp_path / "a-file").write_text("x")
    folder = LocalFileSystem(basepath=str(tmp_path / "a-file"))
    with pytest.raises(BlockStorageError, match=rf"^cannot write {tmp_path}/a-file/out: (FileExistsError|NotADir)"):
        folder.write_path("out", b"1")
    with pytest.raises(BlockStorageError, match=rf"^cannot read {tmp_path}/missing: FileNotFoundError"):
        LocalFileSystem(basepath=str(tmp_path)).read_path("missing")


# -- webhook and SMTP against real receivers ----------------------------------------------------------------------


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on loopback that records each request and answers 202."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            received.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_POST

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_call_sends_the_payload_as_json_with_the_headers(webhook_receiver):
    """call() sends the JSON payload with the block's (secret) headers and returns the receiver's status."""
    url, received = webhook_receiver
    hook = Webhook(url=f"{url}/hooks/run", method="PUT", headers={"Authorization": "Bearer t0ken"})

    assert hook.call({"flow_run": "etl", "state": "Failed"}) == 202

    [request] = received
    assert (request["method"], request["path"]) == ("PUT", "/hooks/run")
    assert request["headers"]["Authorization"] == "Bearer t0ken"
    assert json.loads(request["body"]) == {"flow_run": "etl", "state": "Failed"}


def test_webhook_without_a_receiver_fails_in_one_line():
    """Nothing listens: BlockError naming the method and URL."""
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(BlockError, match=rf"^webhook POST {url} failed: ConnectError"):
        Webhook(url=url).call({"a": 1})


@pytest.fixture
def smtp_receiver() -> Iterator[tuple[int, list[Any]]]:
    """aiosmtpd's SMTP server on loopback (no STARTTLS offered), keeping every message it receives."""
    from aiosmtpd.controller import Controller

    messages: list[Any] = []

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append(envelope)
            return "250 OK"

    controller = Controller(Keep(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, messages
    finally:
        controller.stop()


def test_smtp_send_delivers_a_message(smtp_receiver):
    """send() mails from the block's address to the recipients, with the subject and body."""
    port, messages = smtp_receiver
    mail = SMTP(host="127.0.0.1", port=port, tls=False, from_address="orchestrator@example.com")

    mail.send(["ops@example.com", "dev@example.com"], "etl failed", "the etl flow failed at 03:00")

    [envelope] = messages
    assert envelope.mail_from == "orchestrator@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "dev@example.com"]
    text = envelope.content.decode()
    assert "Subject: etl failed" in text
    assert "the etl flow failed at 03:00" in text


def test_smtp_with_tls_refuses_a_server_without_starttls(smtp_receiver):
    """With tls=True the block never sends in clear: a server that offers no STARTTLS is a one-line error."""
    port, messages = smtp_receiver
    mail = SMTP(host="127.0.0.1", port=port, tls=True, from_address="orchestrator@example.com")
    with pytest.raises(BlockError, match=rf"^cannot send mail through 127.0.0.1:{port}: SMTPNotSupportedError"):
        mail.send("ops@example.com", "subject", "body")
    assert messages == []


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files), made with cryptography for this test only."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_smtp_with_tls_starts_tls_then_logs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """tls=True upgrades the connection before the login: the server (which refuses a login in clear) accepts the
    credentials and the message. The client trusts the test certificate through SSL_CERT_FILE, as a real one would
    be trusted through the system's store."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert_file, key_file = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    logins: list[tuple[str, str, bool]] = []
    messages: list[Any] = []

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            messages.append(envelope)
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode(), session.ssl is not None)
        logins.append(login)
        return AuthResult(success=login == ("bot", "p4ss", True))

    controller = Controller(
        Keep(),
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        mail = SMTP(
            host="127.0.0.1", port=controller.port, username="bot", password="p4ss", from_address="bot@example.com"
        )
        mail.send("ops@example.com", "over tls", "sent after STARTTLS")
    finally:
        controller.stop()

    assert logins == [("bot", "p4ss", True)]
    [envelope] = messages
    assert "sent after STARTTLS" in envelope.content.decode()


# -- the classes themselves ---------------------------------------------------------------------------------------


def test_blocks_validate_like_the_server_and_never_show_secrets_in_their_repr():
    """The SDK classes are the shared block types: the same validation; a repr masks every secret value."""
    secret = Secret(value="hunter2")
    assert secret.get() == "hunter2"
    assert "hunter2" not in repr(secret) and "********" in repr(secret)
    lake = RemoteFileSystem(basepath="s3://b/p", settings={"key": "AKIA", "secret": "shh"})
    assert "AKIA" not in repr(lake) and "shh" not in repr(lake)
    assert JSON(value={"a": [1, 2]}).get() == {"a": [1, 2]}
    with pytest.raises(ValueError, match="basepath"):
        RemoteFileSystem(basepath="no-scheme/path")
    with pytest.raises(ValueError, match="from_address"):
        SMTP(host="mail", from_address="nobody")


def test_importing_the_blocks_is_cheap(tmp_path: Path):
    """`from orchestrator.blocks import ...` loads no fsspec, no httpx and no Django until a block is used."""
    probe = (
        "import json, sys\n"
        "from orchestrator.blocks import Secret, JSON, LocalFileSystem, RemoteFileSystem, Webhook, SMTP\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'fsspec', 's3fs', 'httpx', 'django'})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=orchestrator_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_loading_an_unknown_slug_is_refused():
    """block_load names what a slug must look like."""
    from orchestrator.blocks import block_load

    with pytest.raises(BlockError, match="does not name a block: use TYPE/NAME"):
        block_load("bucket-of-results")
    assert issubclass(BlockNotFound, BlockError)


# -- save and load through the API client ----------------------------------------------------------------------


def one_of_each(tmp_path: Path) -> dict[str, Any]:
    """A block of every type, with secrets in each type that has them."""
    return {
        "db-password": Secret(value="hunter2"),
        "settings": JSON(value={"regions": ["eu", "us"], "limit": 3}),
        "scratch": LocalFileSystem(basepath=str(tmp_path / "scratch")),
        "lake": RemoteFileSystem(
            basepath="s3://lake/results", settings={"key": "AKIA", "secret": "shh", "client_kwargs": {"region": "x"}}
        ),
        "alerts": Webhook(url="https://hooks.example.com/x", headers={"Authorization": "Bearer t0ken"}),
        "mail": SMTP(host="smtp.example.com", username="bot", password="p4ss", from_address="bot@example.com"),
    }


def assert_save_and_load_round_trip(tmp_path: Path) -> None:
    for name, block in one_of_each(tmp_path).items():
        document_id = block.save(name)
        assert block.block_slug == f"{block.slug}/{name}"
        loaded = type(block).load(name)
        assert loaded.model_dump() == block.model_dump(), name  # the secrets come back in clear
        assert (loaded.block_name, loaded._block_id) == (name, document_id)


@pytest.mark.django_db(transaction=True)
def test_every_block_type_saves_and_loads_in_process(tmp_path: Path):
    """With no server (in-process client, admin), each type round-trips, secrets included."""
    assert_save_and_load_round_trip(tmp_path)
    assert Secret.load("db-password").get() == "hunter2"
    assert JSON.load("settings").get() == {"regions": ["eu", "us"], "limit": 3}


@pytest.mark.django_db(transaction=True)
def test_saving_a_taken_name_needs_overwrite():
    """A second save under the same name is refused, saying how to replace it; overwrite=True replaces the data."""
    first = Secret(value="one").save("token")
    with pytest.raises(BlockError) as taken:
        Secret(value="two").save("token")
    assert str(taken.value).startswith("cannot save block 'secret/token': ")
    assert str(taken.value).endswith("; pass overwrite=True to replace it")
    assert Secret(value="two").save("token", overwrite=True) == first
    assert Secret.load("token").get() == "two"


@pytest.mark.django_db(transaction=True)
def test_a_document_that_does_not_fit_the_sdk_type_is_one_line():
    """A document written by a newer type version (a field this SDK does not know) fails the load naming the
    field, not with pydantic's multi-line report."""
    from apps.blocks.models import BlockDocument

    JSON(value=1).save("future")
    BlockDocument.objects.filter(block_type="json", name="future").update(data={"value": 1, "schema": 2})
    with pytest.raises(BlockError) as unfit:
        JSON.load("future")
    assert str(unfit.value) == (
        "block 'json/future' (type version 1) does not fit this SDK's JSON (version 1): schema: "
        "Extra inputs are not permitted"
    )


@pytest.mark.django_db(transaction=True)
def test_loading_a_missing_block_says_how_to_create_it():
    """The error names the block and the two ways to make it, in one line."""
    with pytest.raises(BlockNotFound) as missing:
        Secret.load("db-password")
    assert str(missing.value) == (
        "no block 'secret/db-password'; create it with Secret(...).save('db-password') or in the admin"
    )
    with pytest.raises(BlockNotFound, match=r"^no block 'remote-file-system/lake'; create it with RemoteFileSystem"):
        RemoteFileSystem.load("lake")


@pytest.mark.e2e
def test_every_block_type_saves_and_loads_over_http(server_client, orchestrator_server_process, tmp_path: Path):
    """Against a real server: each type round-trips, and the API itself shows the secrets masked."""
    assert_save_and_load_round_trip(tmp_path)
    with orchestrator_server_process.api_client() as api:
        masked = api.get("block_documents/secret/db-password/").json()["data"]
    assert masked == {"value": "********"}


@pytest.mark.e2e
def test_a_write_key_saves_blocks_but_loading_a_secret_gets_the_403_message(server_client):
    """Reading secret values needs admin scope: a write key's load of a block holding one fails with the server's
    reason, in one line; a block with no secret set loads."""
    server_client("write")
    Secret(value="hunter2").save("db-password")
    with pytest.raises(BlockError) as refused:
        Secret.load("db-password")
    assert str(refused.value) == (
        "cannot load block 'secret/db-password': include_secrets=true needs admin scope (this caller has write); "
        "without it, secret values read as ********"
    )
    # Blocks whose secrets are empty (or that have none) load with any key: nothing is hidden from it.
    JSON(value={"limit": 3}).save("settings")
    RemoteFileSystem(basepath="s3://lake/by-role").save("role-lake")  # credentials from the machine's role
    SMTP(host="relay.internal", tls=False, from_address="bot@example.com").save("relay")
    assert JSON.load("settings").get() == {"limit": 3}
    assert RemoteFileSystem.load("role-lake").settings == {}
    assert SMTP.load("relay").password is None
    SMTP(host="relay.internal", password="p4ss", from_address="bot@example.com").save("relay", overwrite=True)
    with pytest.raises(BlockError, match=r"^cannot load block 'smtp/relay': include_secrets=true needs admin scope"):
        SMTP.load("relay")
