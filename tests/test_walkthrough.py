"""The README's walkthrough runs as written: from the demo store to a trained, evaluated, served model.

The lines come from the README itself, so the walkthrough cannot drift. What a test must change is
kept small and said here: the demo store is loaded the way `make run` loads it (into a temporary
folder), the training run uses the tiny test model and 2 steps instead of SmolLM2's 48, RUN and
COMPARISON are the ids the earlier lines printed, the server gets a free port, and curl's request
is sent with urllib. A line whose comment says `refused: WHAT` must fail with WHAT in its message.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

import pytest

from conftest import ROOT
from tiny_lm import tiny_lm  # noqa: F401

pytestmark = pytest.mark.slow
GOLDSMITH = str(Path(sys.executable).with_name("goldsmith"))


def walkthrough() -> list[str]:
    """The walkthrough's lines (continuations joined), comments kept."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From `make run` to a served model", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, "the README's walkthrough has no bash block"
    lines = [line.strip() for line in block.group(1).replace("\\\n", " ").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve-model exited with {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urlopen(f"{url}/health", timeout=5) as response:
                if json.load(response).get("status") == "ok":
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"serve-model never became ready: {log.read_text(errors='replace')[-3000:]}")


class Walk:
    """Runs the walkthrough's lines one by one, remembering the ids they print."""

    def __init__(self, folder: Path, model: Path):
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.folder, self.model = folder, model
        self.ids: dict[str, str] = {}
        self.server: subprocess.Popen | None = None
        self.port = free_port()

    def args(self, command: str) -> list[str]:
        words = [self.ids.get(w, w) for w in shlex.split(command)]
        if words[1] == "train":  # the tiny model, 2 steps: what the README trains for 6 minutes
            words += ["--base-model", str(self.model), "--max-steps", "2", "--set", "eval_every=1", "--set", "max_seq_length=256"]
        if words[1] == "serve-model":
            words[words.index("--port") + 1] = str(self.port)
        return [GOLDSMITH, *words[1:]]

    def run(self, line: str) -> None:
        command, _, comment = line.partition(" #")
        if command.startswith(("make run", "source ")):
            return
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            self.env[name] = str(self.folder / value)
            return
        if command.startswith("curl "):
            self.ask(command)
            return
        if command.startswith("goldsmith serve-model"):
            self.serve(command)
            return
        done = subprocess.run(self.args(command), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=900)
        refused = re.search(r"refused: (\w+)", comment)
        if refused:
            assert done.returncode == 1 and refused.group(1) in done.stderr, (line, done.stderr[-2000:])
        else:
            assert done.returncode == 0, (line, done.stderr[-3000:])
        self.remember(done.stdout + done.stderr)

    def remember(self, output: str) -> None:
        run = re.search(r"Run (run-[0-9a-f]+)", output)
        if run and "RUN" not in self.ids:
            self.ids["RUN"] = run.group(1)
        comparison = re.search(r"Comparison (\d+)", output)
        if comparison:
            self.ids["COMPARISON"] = comparison.group(1)

    def serve(self, command: str) -> None:
        log = self.folder / "serve.log"
        with open(log, "wb") as out:
            self.server = subprocess.Popen(self.args(command), cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_ready(f"http://127.0.0.1:{self.port}", self.server, log)

    def ask(self, command: str) -> None:
        words = shlex.split(command)
        url = next(w for w in words if w.startswith("http")).replace(":8000", f":{self.port}")
        body = words[words.index("-d") + 1].replace('"RUN"', json.dumps(self.ids["RUN"]))
        payload = json.loads(body) | {"max_tokens": 8}  # a tiny model: a few tokens say it answers
        request = Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        with urlopen(request, timeout=120) as response:
            reply = json.load(response)
        assert reply["model"] == self.ids["RUN"] and reply["choices"][0]["message"]["role"] == "assistant"


def test_the_readme_walkthrough_runs_as_written(tmp_path, tiny_lm):  # noqa: F811
    lines = walkthrough()
    assert any(line.startswith("goldsmith resolve") for line in lines) and lines[0].startswith("make run")
    # What `make run` does first: load the demo team into demo/goldsmith.db.
    (tmp_path / "demo").mkdir()
    loaded = subprocess.run(
        [GOLDSMITH, "demo", "--db", str(tmp_path / "demo" / "goldsmith.db"), "--json"], capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    walk = Walk(tmp_path, tiny_lm)
    try:
        for line in lines:
            walk.run(line)
    finally:
        if walk.server is not None:
            walk.server.terminate()
            walk.server.wait(timeout=60)
    assert {"RUN", "COMPARISON"} <= walk.ids.keys() and walk.server is not None
