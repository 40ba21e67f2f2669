"""Writes for logs: bulk creation, as clients ship logs in batches.

Each batch also writes one event (`logs.written`) in the same transaction, naming the flow runs it wrote lines
for and the range of the lines' ids, so the websocket publisher reads exactly the lines of the batch (and only
for runs somebody watches) without an event per line (docs/live.md).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.db import IntegrityError, transaction

from apps.events.models import Event
from apps.events.stream import wake_on_commit
from apps.logs.models import Log

LOGS_WRITTEN = "logs.written"
# A batch's line ids share 96 random bits and end with the line's number in the batch (32 bits).
_LINE_BITS = 32


def log_ids_for_batch(count: int, *, key: str | None = None) -> list[uuid.UUID]:
    """`count` ids that sort in the order of the lines and fill one range no other batch's id falls in: RFC 9562
    version 8 (custom) UUIDs made of 92 bits shared by the batch and the line's number. The shared bits are
    random, or taken from the batch's key (the same key, the same ids)."""
    if count >= 2**_LINE_BITS:
        raise ValueError(f"at most {2**_LINE_BITS - 1} log lines per batch")
    if key is None:
        shared = secrets.randbits(92)
    else:
        shared = int.from_bytes(hashlib.sha256(key.encode()).digest()[:12], "big") >> 4
    # Layout: 48 random bits, version (4 bits: 8), 12 random bits, variant (2 bits: 0b10), 30 random bits,
    # then the line number.
    high = shared >> 44  # 48 bits
    middle = (shared >> 32) & 0xFFF  # 12 bits
    low = shared & 0x3FFFFFFF  # 30 bits
    prefix = (high << 80) | (0x8 << 76) | (middle << 64) | (0b10 << 62) | (low << _LINE_BITS)
    return [uuid.UUID(int=prefix | number) for number in range(count)]


def logs_create(*, entries: list[dict], batch_key: str | None = None) -> int:
    """Write a batch of log lines (dicts of Log fields) and its `logs.written` event, in one transaction; return
    how many lines were written. A batch with a key is written once: sent again (its answer was lost), it
    writes nothing."""
    if not entries:
        return 0
    ids = log_ids_for_batch(len(entries), key=batch_key)
    try:
        return _logs_write(ids, entries, once=batch_key is not None)
    except IntegrityError:
        if batch_key is not None and Log.objects.filter(pk=ids[0]).exists():  # the same batch, at the same time
            return 0
        raise


def _logs_write(ids: list[uuid.UUID], entries: list[dict], *, once: bool) -> int:
    lines = [Log(id=line_id, **entry) for line_id, entry in zip(ids, entries, strict=True)]
    flow_run_ids = sorted({str(line.flow_run_id) for line in lines if line.flow_run_id is not None})
    with transaction.atomic():
        if once and Log.objects.filter(pk=ids[0]).exists():
            return 0
        Log.objects.bulk_create(lines, batch_size=500)
        Event.objects.create(
            name=LOGS_WRITTEN,
            resource_type="log",
            resource_id=ids[0],
            payload={
                "flow_run_ids": flow_run_ids,
                "first_id": str(ids[0]),
                "last_id": str(ids[-1]),
                "count": len(ids),
            },
        )
        wake_on_commit()
    return len(entries)
