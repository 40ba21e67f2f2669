"""Code storage without a server: which files an upload takes (defaults and the ignore file), the content-hash
prefix, and a fetch that refuses a manifest that does not describe its prefix (orchestrator/sdk/code_storage.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.blocks import LocalFileSystem
from orchestrator.sdk.code_storage import MANIFEST, code_fetch, code_files, code_manifest, code_upload
from orchestrator.sdk.exceptions import CodeStorageError


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_upload_leaves_out_the_defaults_and_what_the_ignore_file_lists(tmp_path: Path) -> None:
    """gitignore patterns: a file, a folder, a glob and a negation; .git, caches and virtualenvs never go."""
    project = write(
        tmp_path,
        {
            "flows.py": "",
            "lib/io.py": "",
            "lib/__pycache__/io.cpython-311.pyc": "",
            ".git/HEAD": "",
            ".venv/bin/python": "",
            "secrets.env": "",
            "data/big.csv": "",
            "data/keep.csv": "",
            "notes.tmp": "",
            ".orchestratorignore": "secrets.env\ndata/*\n!data/keep.csv\n*.tmp\n",
        },
    )
    assert code_files(project) == [".orchestratorignore", "data/keep.csv", "flows.py", "lib/io.py"]


def test_the_prefix_names_the_content_only(tmp_path: Path) -> None:
    """The same files give the same prefix wherever they are; a changed byte or a renamed file gives another."""
    first = code_manifest(write(tmp_path / "a", {"flows.py": "x = 1\n", "lib/io.py": ""}))
    same = code_manifest(write(tmp_path / "b", {"lib/io.py": "", "flows.py": "x = 1\n"}))
    changed = code_manifest(write(tmp_path / "c", {"flows.py": "x = 2\n", "lib/io.py": ""}))
    renamed = code_manifest(write(tmp_path / "d", {"flow.py": "x = 1\n", "lib/io.py": ""}))
    assert first["prefix"] == same["prefix"] and len(first["prefix"]) == 16
    assert len({first["prefix"], changed["prefix"], renamed["prefix"]}) == 3


@pytest.mark.django_db(transaction=True)
def test_a_fetch_refuses_a_manifest_that_leaves_its_prefix_and_uses_nothing_half_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest naming `../` could write outside the cache; it is refused and no cache folder is left."""
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    block = LocalFileSystem(basepath=str(tmp_path / "store"))
    block.save("code")
    prefix = code_upload(block=block, folder=write(tmp_path / "project", {"flows.py": ""})).prefix
    manifest = tmp_path / "store" / prefix / MANIFEST
    manifest.write_text(json.dumps({"prefix": prefix, "files": {"../escape.py": "0" * 64}}))
    with pytest.raises(CodeStorageError, match=r"names a path outside it: '\.\./escape\.py'"):
        code_fetch(storage_block="local-file-system/code", prefix=prefix)
    assert not any((tmp_path / "home").glob("code/*"))
