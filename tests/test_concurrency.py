"""8 real processes x 250 edits of one example: no lost update, every stale save a Conflict."""

import json
import subprocess
import sys
from pathlib import Path

from curation.examples import workflow
from schemas import ExampleContent

WORKER = Path(__file__).parent / "workers" / "editor.py"
PROCESSES, EDITS = 8, 250


def test_concurrent_edits_lose_nothing(team, db_path):
    ex = workflow.create_example(team, "amy", ExampleContent.from_pair("counter", "0"))
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(db_path), str(ex.id), str(EDITS), f"w{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err  # any error other than Conflict fails the worker
        results.append(json.loads(out))
    saved = sum(r["saved"] for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    assert saved + conflicts == PROCESSES * EDITS
    assert conflicts > 0  # the race really happened

    final = team.get_example(ex.id)
    assert int(final.response) == saved  # zero lost updates: every reported save is in the counter
    assert final.version == 1 + saved
    edits = [h for h in team.history("example", ex.id) if h.action == "edit"]
    assert len(edits) == saved
    # Each saved edit built on the one before it: the history reads 0->1, 1->2, ... with no gaps.
    assert [(int(h.before["messages"][1]["content"]), int(h.after["messages"][1]["content"])) for h in edits] == [
        (n, n + 1) for n in range(saved)
    ]
