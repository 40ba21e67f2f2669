"""Keyset paging for the live pages: a page is the rows after (or before) one row's (time, id), never an OFFSET
and never a COUNT, so the pages of a million-run table or of a run's 100,000 log lines cost the same as the first.

Every list of the pages is ordered by a non-null time column and the primary key (which makes the order total),
so the cursor is simply the direction and that pair, base64-encoded: `n` reads on in the list's order from the
row, `p` reads back from it. The database serves each page from an index on (filter column, time, id).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

FORWARD, BACKWARD = "n", "p"


class InvalidCursor(ValueError):
    """A cursor that no page link produced."""


@dataclass
class Page:
    rows: list[Any] = field(default_factory=list)
    # Cursors of the neighbouring pages in the list's order (None: there is none).
    next_cursor: str | None = None
    previous_cursor: str | None = None

    @property
    def is_last(self) -> bool:
        return self.next_cursor is None


def encode_cursor(direction: str, moment: datetime.datetime, pk: uuid.UUID) -> str:
    raw = f"{direction}|{moment.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, datetime.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, moment, pk = raw.split("|")
        parsed = datetime.datetime.fromisoformat(moment)
        if direction not in (FORWARD, BACKWARD) or parsed.tzinfo is None:
            raise ValueError(direction)
        return direction, parsed, uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("the page link is not valid any more: start again from the first page") from None


def _beyond(time_field: str, moment: datetime.datetime, pk: uuid.UUID, smaller: bool) -> Q:
    lookup = "lt" if smaller else "gt"
    return Q(**{f"{time_field}__{lookup}": moment}) | Q(**{time_field: moment, f"pk__{lookup}": pk})


def keyset_page(
    queryset: QuerySet[Any] | list[QuerySet[Any]],
    *,
    time_field: str,
    descending: bool,
    limit: int,
    cursor: str | None = None,
    from_end: bool = False,
) -> Page:
    """One page of `queryset` in (time_field, pk) order (newest first when `descending`). Without a cursor the
    page is the first one, or the last one with `from_end` (a log's tail). Raises InvalidCursor.

    A list of querysets is their union (an OR of conditions that each have their own index, such as several
    states): each is read as one index range of `limit + 1` rows and the reads are merged, where a single
    `WHERE a IN (...) OR b IN (...)` would make the database sort every matching row."""
    branches = queryset if isinstance(queryset, list) else [queryset]
    sign = "-" if descending else ""
    back = "" if descending else "-"
    if cursor:
        direction, moment, pk = decode_cursor(cursor)
        backward = direction == BACKWARD
        # Reading on in a descending list means smaller keys; reading back, larger ones (and the reverse).
        after = _beyond(time_field, moment, pk, smaller=descending != backward)
        branches = [branch.filter(after) for branch in branches]
    else:
        backward = from_end
    order = [f"{back}{time_field}", f"{back}pk"] if backward else [f"{sign}{time_field}", f"{sign}pk"]
    rows = merge_rows(
        [list(branch.order_by(*order)[: limit + 1]) for branch in branches],
        time_field=time_field,
        descending=descending != backward,
    )[: limit + 1]
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    has_next = (more if not backward else bool(cursor)) and bool(rows)
    has_previous = (more if backward else bool(cursor)) and bool(rows)
    page = Page(rows=rows)
    if has_next:
        page.next_cursor = encode_cursor(FORWARD, getattr(rows[-1], time_field), rows[-1].pk)
    if has_previous:
        page.previous_cursor = encode_cursor(BACKWARD, getattr(rows[0], time_field), rows[0].pk)
    return page


def merge_rows(lists: list[list[Any]], *, time_field: str, descending: bool) -> list[Any]:
    """Rows of several reads in one (time, pk) order, each row once."""
    if len(lists) == 1:
        return lists[0]
    unique = {row.pk: row for rows in lists for row in rows}
    return sorted(unique.values(), key=lambda row: (getattr(row, time_field), row.pk), reverse=descending)
