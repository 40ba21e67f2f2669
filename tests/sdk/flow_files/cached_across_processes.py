"""Run as a script, twice, by tests/sdk/test_prefect_fidelity_caching.py: the second process must be answered
from the cache the first one filled. Each real execution appends a line to the file WORK_LOG names."""

import json
import os
import sys
from datetime import timedelta

from orchestrator import flow, task
from orchestrator.tasks import task_input_hash


def record_work(what: str) -> None:
    with open(os.environ["WORK_LOG"], "a") as log:
        log.write(what + "\n")


@task(cache_key_fn=task_input_hash, cache_expiration=timedelta(minutes=5))
def hashed(x: int) -> int:
    record_work(f"hashed {x}")
    return x * 10


@task(cache_key_fn=lambda context, arguments: f"report-{arguments['day']}")
def keyed(day: str) -> str:
    record_work(f"keyed {day}")
    return f"report for {day}"


@flow(name="cached-across-processes")
def cached_across_processes(x: int, day: str) -> list:
    states = [hashed(x, return_state=True), keyed(day, return_state=True)]
    return [[state.name, state.result()] for state in states]


if __name__ == "__main__":
    print(json.dumps(cached_across_processes(int(sys.argv[1]), sys.argv[2])))
