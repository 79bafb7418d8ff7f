"""The training process: `python -m training.worker RUN_ID --db DB`.

The same entry point serves one process and many: under torchrun or `accelerate launch` every
rank runs it, and accelerate picks DDP (NCCL on GPUs, gloo on CPUs) from the environment.
Exit status 0: completed, cancelled or interrupted (SIGTERM; a checkpoint was saved);
1: the run failed (the reason is in the store); 2: bad input.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(prog="python -m training.worker", description="Run (or resume) one Goldsmith training run.")
    parser.add_argument("run_id")
    parser.add_argument("--db", required=True, help="the Goldsmith database file")
    args = parser.parse_args(argv)
    from curation.errors import GoldsmithError
    from training.trainer import train

    try:
        status = train(args.db, args.run_id)
    except GoldsmithError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # recorded in the store by train(); one line here
        print(f"error: training failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"run {args.run_id}: {status}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
