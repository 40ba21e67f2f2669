"""Code storage: a deployment's flow folder kept in a file-system block, so a worker on another machine runs it.

`deploy --storage remote-file-system/code` uploads the folder holding the entrypoint file (less what the ignore
file and the defaults leave out) under a prefix named by the content's hash:

    <basepath>/<prefix>/flows.py
    <basepath>/<prefix>/helpers/io.py
    <basepath>/<prefix>/.orchestrator-manifest.json     written last: {"prefix": ..., "files": {path: sha256}}

The prefix is the first 16 hex digits of the SHA-256 of the sorted (path, file SHA-256) list, so the same code is
the same prefix: a second deploy of unchanged code finds the manifest and uploads nothing. A prefix without its
manifest is an upload that did not finish, and is uploaded again.

A worker fetches the prefix into `$ORCHESTRATOR_HOME/code/<prefix>`: it downloads into a temporary folder next to
it, checks every file against the manifest and the manifest against the prefix, then renames the folder into
place, so a half download is never used; a folder already in place is reused. docs/blocks.md, "Code storage".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from orchestrator import config
from orchestrator.sdk.exceptions import BlockError, CodeStorageError

if TYPE_CHECKING:
    from orchestrator.blocks import FileSystem

IGNORE_FILE = ".orchestratorignore"
MANIFEST = ".orchestrator-manifest.json"
# Left out of every upload (gitignore patterns), before the folder's own ignore file.
DEFAULT_IGNORES = (".git/", ".hg/", ".svn/", "__pycache__/", ".venv/", "venv/", "*.pyc", "*.pyo", ".DS_Store", MANIFEST)
PREFIX_LENGTH = 16
PREFIX_PATTERN = re.compile(r"^[0-9a-f]{16,64}$")
STORAGE_BLOCK_TYPES = ("local-file-system", "remote-file-system")
# A deploy from the wrong folder (a home directory) should stop with a hint, not upload it.
MAX_FILES = 5_000
MAX_BYTES = 200 * 1024 * 1024
CREDENTIALS_HINT = (
    "this key may not read the block's secrets, so its settings were left out and the storage used the "
    "credentials of this machine's environment: use an admin-scoped ORCHESTRATOR_API_KEY or set the storage's "
    "credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)"
)


@dataclass(frozen=True)
class CodeUpload:
    """What an upload did: the prefix the code is under, how many files it holds, whether they were sent now."""

    prefix: str
    files: int
    uploaded: bool


def storage_block_load(slug: str) -> FileSystem:
    """The file-system block `type/name` that holds code, loaded even when this key may not read its secrets
    (then without them: the storage takes its credentials from the environment)."""
    from orchestrator.blocks import FileSystem, block_load

    block_type, slash, name = slug.partition("/")
    if not slash or not name or block_type not in STORAGE_BLOCK_TYPES:
        raise CodeStorageError(
            f"{slug!r} is not a code storage block: name one as TYPE/NAME with TYPE among "
            f"{', '.join(STORAGE_BLOCK_TYPES)}, e.g. remote-file-system/code"
        )
    block = block_load(slug, secrets_optional=True)
    if not isinstance(block, FileSystem):  # the types above are file systems; a guard for a future type list
        raise CodeStorageError(f"block '{slug}' is not a file system")
    return block


def _ignore_spec(folder: Path) -> Any:
    import pathspec

    lines = list(DEFAULT_IGNORES)
    ignore_file = folder / IGNORE_FILE
    if ignore_file.is_file():
        try:
            lines += ignore_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CodeStorageError(f"cannot read {ignore_file}: {type(exc).__name__}: {exc}") from None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def code_files(folder: Path) -> list[str]:
    """The files of `folder` to upload, as sorted POSIX paths relative to it (ignored ones left out; folders that
    are links are not followed)."""
    spec = _ignore_spec(folder)
    found: list[str] = []
    for directory, subdirectories, files in os.walk(folder):
        relative = Path(directory).relative_to(folder)
        subdirectories[:] = [name for name in subdirectories if not spec.match_file((relative / name).as_posix() + "/")]
        for name in files:
            path = (relative / name).as_posix()
            if not spec.match_file(path) and (Path(directory) / name).is_file():
                found.append(path)
    return sorted(found)


def content_prefix(digests: dict[str, str]) -> str:
    """The prefix of a set of files: the SHA-256 of the sorted (path, file SHA-256) pairs, shortened."""
    whole = hashlib.sha256()
    for path in sorted(digests):
        whole.update(f"{path}\0{digests[path]}\n".encode())
    return whole.hexdigest()[:PREFIX_LENGTH]


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CodeStorageError(f"cannot read {file}: {type(exc).__name__}: {exc.strerror or exc}") from None


def code_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of `folder`'s code: its prefix and each file's SHA-256."""
    files = code_files(folder)
    if len(files) > MAX_FILES:
        raise CodeStorageError(
            f"{folder} holds {len(files)} files to upload (more than {MAX_FILES}): deploy from the flow's own folder "
            f"or leave files out with {IGNORE_FILE}"
        )
    digests: dict[str, str] = {}
    total = 0
    for path in files:
        content = _read(folder / path)
        total += len(content)
        if total > MAX_BYTES:
            raise CodeStorageError(
                f"{folder} holds more than {MAX_BYTES // (1024 * 1024)} MB to upload: deploy from the flow's own "
                f"folder or leave files out with {IGNORE_FILE}"
            )
        digests[path] = hashlib.sha256(content).hexdigest()
    return {"prefix": content_prefix(digests), "files": digests}


def _storage_failure(what: str, block: FileSystem | None, exc: BaseException) -> CodeStorageError:
    cause = exc if isinstance(exc, BlockError | CodeStorageError) else f"{type(exc).__name__}: {exc}"
    message = f"cannot {what}: {cause}"
    if block is not None and block.secrets_withheld:
        message += f" ({CREDENTIALS_HINT})"
    return CodeStorageError(message)


def code_upload(*, block: FileSystem, folder: Path) -> CodeUpload:
    """Upload `folder` to `block` under its content prefix, unless that prefix is already complete there."""
    slug = block.block_slug or block.slug
    manifest = code_manifest(folder)
    prefix = manifest["prefix"]
    try:
        if block.exists(f"{prefix}/{MANIFEST}"):
            return CodeUpload(prefix=prefix, files=len(manifest["files"]), uploaded=False)
        for path in manifest["files"]:
            block.write_path(f"{prefix}/{path}", _read(folder / path))
        block.write_path(f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True).encode())
    except BlockError as exc:
        raise _storage_failure(f"upload the flow's code to block '{slug}'", block, exc) from exc
    return CodeUpload(prefix=prefix, files=len(manifest["files"]), uploaded=True)


def code_cache_root() -> Path:
    return config.home() / "code"


def _checked_manifest(raw: bytes, prefix: str) -> dict[str, str]:
    """The manifest's files, refused unless it describes exactly `prefix` and every path stays inside it."""
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(digest, str) for digest in files.values()):
        raise CodeStorageError(f"the manifest of prefix {prefix} is not a code manifest")
    for path in files:
        parts = PurePosixPath(path).parts
        if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
            raise CodeStorageError(f"the manifest of prefix {prefix} names a path outside it: {path!r}")
    if content_prefix(files) != prefix:
        raise CodeStorageError(f"the manifest under prefix {prefix} describes other code (prefix mismatch)")
    return files


def code_fetch(*, storage_block: str, prefix: str) -> Path:
    """The folder holding the code of `prefix` from the block `storage_block` (`type/name`), downloaded into the
    cache unless it is there already. Raises CodeStorageError naming the block and the cause."""
    if not PREFIX_PATTERN.match(prefix):
        raise CodeStorageError(f"{prefix!r} is not a code prefix (hex digits of a content hash)")
    target = code_cache_root() / prefix
    if target.is_dir():
        return target
    block: FileSystem | None = None
    try:
        block = storage_block_load(storage_block)
        files = _checked_manifest(block.read_path(f"{prefix}/{MANIFEST}"), prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f".partial-{prefix}-{uuid.uuid4().hex[:8]}"
        try:
            for path, digest in files.items():
                content = block.read_path(f"{prefix}/{path}")
                if hashlib.sha256(content).hexdigest() != digest:
                    raise CodeStorageError(f"{path} under prefix {prefix} does not match its manifest")
                file = partial.joinpath(*PurePosixPath(path).parts)
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(content)
            partial.mkdir(parents=True, exist_ok=True)  # code with no files at all is still a folder
            try:
                partial.rename(target)
            except OSError:
                if not target.is_dir():  # another run of this prefix put it in place first: use that one
                    raise
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(partial)
    except (BlockError, CodeStorageError, OSError) as exc:
        what = f"fetch the flow's code (prefix {prefix}) from block '{storage_block}'"
        raise _storage_failure(what, block, exc) from exc
    return target
