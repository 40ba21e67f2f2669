"""`orchestrator deploy PATH.py:FLOW_FN --name N --pool P [--cron | --interval | --rrule] ...`: register a
deployment of a flow for workers (an upsert: deploying again updates it and reschedules what changed). With
`--storage TYPE/NAME` the flow's folder is uploaded to that file-system block first (orchestrator/sdk/code_storage.py)
and workers run the code from there."""

from __future__ import annotations

import importlib.util
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from apps.core.management.base import OrchestratorCommand
from apps.deployments.cli import parse_params
from apps.deployments.schedules import describe
from orchestrator.client import get_client
from orchestrator.sdk.code_storage import CodeUpload
from orchestrator.sdk.exceptions import BlockError, BlockNotFound, CodeStorageError


def load_flow(target: str) -> Any:
    """The Flow object `FN` defined in `PATH.py` (`PATH.py:FN`); the file runs as a module, not as __main__."""
    from orchestrator.sdk.flows import Flow

    path_text, separator, attribute = target.rpartition(":")
    if not separator or not path_text or not attribute:
        raise CommandError(f"{target!r} is not PATH.py:FLOW_FUNCTION")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    module_name = f"orchestrator_deploy_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CommandError(f"{path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise CommandError(f"{path} failed to load: {type(exc).__name__}: {exc}") from None
    found = getattr(module, attribute, None)
    if found is None:
        raise CommandError(f"{path} has no {attribute!r}")
    if not isinstance(found, Flow):
        raise CommandError(f"{attribute!r} in {path} is not a flow (decorate it with @flow)")
    return found


def code_store(slug: str, flow: Any) -> CodeUpload:
    """Upload the flow's folder to the storage block `slug` (code_storage); a CommandError naming it otherwise."""
    from orchestrator.sdk.code_storage import code_upload, storage_block_load
    from orchestrator.sdk.deployments import source_file_of

    block_type, slash, name = slug.partition("/")
    if not slash or not block_type or not name:
        raise CommandError(f"--storage {slug!r}: name a block as TYPE/NAME, e.g. remote-file-system/code")
    try:
        block = storage_block_load(slug)
        return code_upload(block=block, folder=source_file_of(flow.fn).parent)
    except BlockNotFound:
        raise CommandError(
            f"no block {slug!r}; create it first (in the admin under Blocks, or from Python with the block's "
            f"class and .save({name!r}))"
        ) from None
    except (BlockError, CodeStorageError) as exc:
        raise CommandError(str(exc)) from None


class Command(OrchestratorCommand):
    help = "Register (or update) a deployment of a flow for the workers of a work pool."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", metavar="PATH.py:FLOW_FN", help="the file and the flow function in it")
        parser.add_argument("--name", required=True, help="the deployment's name")
        parser.add_argument("--pool", required=True, metavar="POOL", help="the work pool whose workers run it")
        parser.add_argument("--queue", metavar="QUEUE", help="the work queue in the pool")
        schedule = parser.add_mutually_exclusive_group()
        schedule.add_argument("--cron", metavar="EXPR", help="a cron schedule, e.g. '0 2 * * *'")
        schedule.add_argument("--interval", metavar="SECONDS", help="run every SECONDS seconds")
        schedule.add_argument("--rrule", metavar="RULE", help="an RFC 5545 rule, e.g. 'FREQ=DAILY;BYHOUR=2'")
        parser.add_argument("--timezone", metavar="TZ", help="time zone of the schedule, e.g. Europe/Berlin")
        parser.add_argument("--anchor-date", metavar="TIME", help="interval schedules: the first run's time")
        parser.add_argument("--param", action="append", default=[], metavar="K=V", help="a default parameter")
        parser.add_argument("--tag", action="append", default=[], metavar="TAG", help="a tag for its runs")
        parser.add_argument(
            "--storage",
            metavar="BLOCK",
            help="upload the flow's folder to this file-system block (TYPE/NAME); workers run it from there",
        )
        parser.add_argument("--description", help="what the deployment is for")
        parser.add_argument("--deployment-version", metavar="VERSION", help="a version label for the deployment")
        parser.add_argument("--paused", action="store_true", help="register it paused (no scheduled runs)")

    def handle(self, *args: Any, **options: Any) -> None:
        from orchestrator.sdk.deployments import deployment_body, schedules_body

        if options["timezone"] and not (options["cron"] or options["interval"] or options["rrule"]):
            raise CommandError("--timezone needs a schedule (--cron, --interval or --rrule)")
        interval = None
        if options["interval"] is not None:
            try:
                interval = float(options["interval"])
            except ValueError:
                raise CommandError(f"--interval {options['interval']!r} is not a number of seconds") from None
        flow = load_flow(options["target"])
        try:
            schedules = schedules_body(
                cron=options["cron"],
                interval=interval,
                rrule=options["rrule"],
                timezone=options["timezone"],
                anchor_date=options["anchor_date"],
            )
            parameters = parse_params(options["param"])
            upload = code_store(options["storage"], flow) if options["storage"] else None
            body = deployment_body(
                flow,
                name=options["name"],
                work_pool_name=options["pool"],
                work_queue_name=options["queue"],
                parameters=parameters,
                schedules=schedules,
                tags=options["tag"],
                description=options["description"],
                version=options["deployment_version"],
                paused=options["paused"],
                storage_block=options["storage"],
                storage_path=upload.prefix if upload else None,
            )
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        client = get_client()
        pool_existed = client.work_pool_exists(options["pool"])
        deployment, created = client.upsert_deployment(body)
        reference = f"{deployment['flow_name']}/{deployment['name']}"
        if not pool_existed:
            self.stdout.write(f"Created work pool {options['pool']!r} (type process, with its default queue)")
        self.stdout.write(f"Deployment {reference!r} {'created' if created else 'updated'} ({deployment['id']})")
        self.stdout.write(f"  entrypoint: {deployment['entrypoint']}")
        if upload is not None:
            how = f"uploaded {upload.files} file(s)" if upload.uploaded else f"unchanged ({upload.files} file(s))"
            self.stdout.write(f"  code:       {how} in {options['storage']} under {upload.prefix}/")
        self.stdout.write(f"  work pool:  {deployment['work_pool_name']}")
        for row in deployment["schedules"]:
            self.stdout.write(f"  schedule:   {describe(row['schedule'])}")
        upcoming = client.read_deployment_upcoming_runs(deployment["id"], limit=3)
        for run in upcoming:
            self.stdout.write(f"  next run:   {run['expected_start_time']} ({run['name']})")
        self.stdout.write(f"Run it now: orchestrator deployment run '{reference}'")
        pool = shlex.quote(deployment["work_pool_name"])
        self.stdout.write(f"Start a worker: orchestrator worker start --pool {pool}")
