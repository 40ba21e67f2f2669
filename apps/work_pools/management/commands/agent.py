"""`orchestrator agent start --pool P ...`: the seed's name for `orchestrator worker start` (the same command)."""

from apps.work_pools.management.commands.worker import Command as WorkerCommand


class Command(WorkerCommand):
    help = "Start a worker (an agent) that polls a work pool and runs its flow runs; same as `worker start`."
