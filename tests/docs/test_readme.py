"""The README is tested: its shell and Python blocks run in order, as written, in a fresh folder and home
against the real `orchestrator` (a real server started by the README itself), so it cannot drift.

How blocks are read (see `readme_blocks`):
- ```sh blocks run in bash with `set -e`; each block starts with the environment the previous one exported;
  a command ending in `&` keeps running in the background until the test ends (as in a user's shell).
- ```python blocks whose first line is `# NAME.py` are written to that file; other Python blocks run.
- `<!-- readme-test: skip REASON -->` right before a block leaves it out (the set-up commands this test runs
  under, and blocks that need a second machine); every other block runs.
The only change made to the text: the server's port 4200 becomes a free port, so a developer's own server
on 4200 does not get in the way.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import sqlite_pass_only

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
BLOCK_TIMEOUT_SECONDS = 180

pytestmark = pytest.mark.e2e


@dataclass
class Block:
    line: int
    language: str
    code: str
    directive: str | None
    reason: str


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block with its language and the directive comment right above it (if any)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        index += 1
        above = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        directive = DIRECTIVE.match(above)
        blocks.append(
            Block(
                line=start + 1,
                language=opening.group(1),
                code="\n".join(body) + "\n",
                directive=directive.group(1) if directive else None,
                reason=directive.group(2) if directive else "",
            )
        )
    return blocks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_directives_are_known_and_every_skip_says_why() -> None:
    """A skip without a reason, or a misspelled directive, would quietly stop testing a block."""
    for block in readme_blocks(README.read_text()):
        if block.directive is not None:
            assert block.directive == "skip", f"README line {block.line}: unknown directive {block.directive!r}"
            assert block.reason, f"README line {block.line}: a skipped block must say why"


@sqlite_pass_only  # the README's commands run on a fresh home's SQLite: ORCHESTRATOR_* is not passed on
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    """Each shell and Python block, in order, in a fresh folder and ORCHESTRATOR_HOME, succeeds."""
    port = str(free_port())
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    (work / "Makefile").symlink_to(ROOT / "Makefile")
    state = tmp_path / "environment.sh"
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORCHESTRATOR_", "DJANGO_", "PYTEST", "COV_"))
    }
    environment.update(
        ORCHESTRATOR_HOME=str(tmp_path / "home"),
        PATH=f"{Path(sys.executable).parent}:{environment.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    state.write_text("")
    sessions: list[int] = []
    ran = 0
    try:
        for block in readme_blocks(README.read_text()):
            if block.directive == "skip" or block.language not in ("sh", "python"):
                continue
            code = block.code.replace("4200", port)
            if block.language == "python":
                first = code.splitlines()[0] if code.strip() else ""
                name = re.fullmatch(r"#\s*([\w./-]+\.py)\s*", first)
                if name:
                    (work / name.group(1)).write_text(code)
                    continue
                script = f'source "{state}"\ncd "{work}"\npython - <<\'README_PYTHON\'\n{code}README_PYTHON\n'
            else:
                script = f'source "{state}"\ncd "{work}"\nset -e\n{code}\nexport -p > "{state}"\n'
            # Output to a file, not a pipe: a background command (`... &`) keeps its output open after the block.
            log = tmp_path / f"block-{block.line}.log"
            with log.open("w") as output_file:
                process = subprocess.Popen(
                    ["bash", "-c", script],
                    env=environment,
                    stdout=output_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            sessions.append(process.pid)
            try:
                process.wait(timeout=BLOCK_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                pytest.fail(f"README block at line {block.line} did not finish in time:\n{log.read_text()}")
            output = log.read_text()
            assert process.returncode == 0, f"README block at line {block.line} failed:\n{block.code}\n---\n{output}"
            ran += 1
    finally:
        for session in sessions:
            try:
                os.killpg(session, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(1)
        for session in sessions:
            try:
                os.killpg(session, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert ran >= 5, f"only {ran} README blocks ran: the directives skip too much"
