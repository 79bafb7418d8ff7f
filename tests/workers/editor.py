"""A separate process that edits one example N times, each time from a fresh read.

Usage: python editor.py DB EXAMPLE_ID EDITS WORKER  ->  prints {"saved": n, "conflicts": n}
The response text is a counter: each save writes (counter it read) + 1, so a lost update shows up
as a final counter lower than the number of saves that reported success.
"""

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from curation.errors import Conflict
from curation.examples import workflow
from curation.store import Store
from schemas import ExampleContent


def main() -> None:
    db, example_id, edits, worker = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    store = Store(db)
    rng = random.Random(worker)
    saved = conflicts = 0
    for _ in range(edits):
        current = store.get_example(example_id)  # read outside any transaction, like a page would
        counter = int(current.response)
        time.sleep(rng.random() / 1000)  # let other writers get in between read and save
        try:
            workflow.edit_example(
                store, "amy", example_id, current.version, ExampleContent.from_pair(current.prompt, str(counter + 1))
            )
            saved += 1
        except Conflict:
            conflicts += 1
    print(json.dumps({"saved": saved, "conflicts": conflicts}))


if __name__ == "__main__":
    main()
