"""`orchestrator worker start --pool P [--queue Q ...] [--limit N] [--name NAME]`: run a process worker (or, for a
celery pool, a Celery worker on the pool's queue: orchestrator/workers/celery_pool.py).

The worker talks to the server only over HTTP (ORCHESTRATOR_API_URL), so it runs on any machine that reaches
the API; it executes each flow run it claims in a subprocess (orchestrator/workers/process.py). It stops on
SIGTERM or Ctrl+C after its runs in progress end (a second signal kills them and marks them Crashed).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.management.base import OneLineErrorParser, OrchestratorCommand


class Command(OrchestratorCommand):
    help = "Start a worker that polls a work pool and runs its flow runs in subprocesses."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(
            dest="action", required=True, parser_class=OneLineErrorParser, metavar="{start}"
        )
        start = actions.add_parser("start", help="poll the pool and run its flow runs until stopped")
        start.add_argument("--pool", required=True, metavar="POOL", help="the work pool to take runs from")
        start.add_argument(
            "--queue",
            action="append",
            default=[],
            metavar="QUEUE",
            help="take runs only from this queue of the pool; repeat for several (default: all its queues)",
        )
        start.add_argument("--limit", type=int, metavar="N", help="run at most N flow runs at once (default: no limit)")
        start.add_argument("--name", metavar="NAME", help="the worker's name in the pool (default: HOSTNAME-PID)")

    def echo(self, line: str) -> None:
        """A line of the worker's, printed at once (its output interleaves with the runs')."""
        self.stdout.write(line)
        self.stdout.flush()

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        from orchestrator.workers import celery_pool
        from orchestrator.workers.process import ProcessWorker, WorkerError

        if celery_pool.pool_type(options["pool"]) == "celery":  # a Celery worker on the pool's queue instead
            try:
                celery_pool.start_worker(
                    pool=options["pool"],
                    queues=options["queue"],
                    limit=options["limit"],
                    name=options["name"],
                    echo=self.echo,
                )
            except celery_pool.CeleryWorkerError as exc:
                raise CommandError(str(exc)) from None
        try:
            worker = ProcessWorker(
                pool=options["pool"],
                queues=options["queue"],
                limit=options["limit"],
                name=options["name"],
                echo=self.echo,
            )
            pool = worker.check_pool()
        except WorkerError as exc:
            raise CommandError(str(exc)) from None
        if pool.get("type", "process") != "process":
            raise CommandError(
                f"work pool {worker.pool!r} is a {pool.get('type')} pool; this worker runs process pools only"
            )
        if worker.run() != 0:
            sys.exit(1)  # it said why (e.g. its pool was deleted)
