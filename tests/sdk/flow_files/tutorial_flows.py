"""Flows in the style of Prefect's tutorials, ported by changing the imports only.

The tests run this file three ways and expect the same states each time: imported in the test process
(ephemeral mode, the test database), as a script with no server (ephemeral mode, SQLite in its own home),
and as a script with ORCHESTRATOR_API_URL pointing at a real server (HTTP mode). As a script it prints one
JSON line: each flow's name, final state name and result.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from orchestrator import flow, get_run_logger, task, unmapped
from orchestrator.tasks import task_input_hash

EXTRACT_CALLS = {"count": 0}


# -- ETL with retries ------------------------------------------------------------------------------------------
@task(retries=2, retry_delay_seconds=0.05)
def extract(source: str) -> list[dict]:
    EXTRACT_CALLS["count"] += 1
    if EXTRACT_CALLS["count"] == 1:
        raise ConnectionError(f"{source} did not answer")
    return [{"id": number, "amount": number * 10} for number in range(1, 5)]


@task
def transform(record: dict, rate: float) -> dict:
    return {"id": record["id"], "amount": round(record["amount"] * rate, 2)}


@task
def load(records: list[dict]) -> int:
    get_run_logger().info("loaded %d records", len(records))
    return len(records)


@flow(name="tutorial-etl", log_prints=True)
def etl(source: str = "crm", rate: float = 1.5) -> int:
    raw = extract(source)
    cleaned = transform.map(raw, unmapped(rate))
    print(f"transformed {len(cleaned)} records from {source}")
    return load(cleaned)


# -- fan-out with map ------------------------------------------------------------------------------------------
@task
def square(number: int) -> int:
    return number * number


@flow(name="tutorial-fan-out")
def fan_out(count: int = 4) -> int:
    return sum(future.result() for future in square.map(range(count)))


# -- subflows --------------------------------------------------------------------------------------------------
@task
def summarize(region: str) -> str:
    return f"{region}: ok"


@flow(name="tutorial-report")
def report(region: str) -> str:
    return summarize(region)


@flow(name="tutorial-regions")
def regions() -> list[str]:
    return [report(region) for region in ("emea", "apac")]


# -- async -----------------------------------------------------------------------------------------------------
@task
async def fetch_page(page: int) -> int:
    await asyncio.sleep(0.01)
    return page * 100


@flow(name="tutorial-async")
async def crawl(pages: int = 3) -> int:
    return sum(await asyncio.gather(*(fetch_page(page) for page in range(pages))))


# -- caching ---------------------------------------------------------------------------------------------------
@task(cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1))
def lookup_rate(currency: str) -> float:
    return {"EUR": 1.1, "GBP": 1.25}.get(currency, 1.0)


@flow(name="tutorial-cached")
def convert(amount: float, currency: str = "EUR") -> float:
    return round(amount * lookup_rate(currency), 2)


# -- a failing task --------------------------------------------------------------------------------------------
@task
def validate(rows: int) -> int:
    if rows < 10:
        raise ValueError(f"expected at least 10 rows, got {rows}")
    return rows


@task
def publish(rows: int) -> str:
    return f"published {rows} rows"


@flow(name="tutorial-quality-gate")
def quality_gate(rows: int = 4) -> tuple:
    checked = validate.submit(rows)
    return checked, publish.submit(checked)  # the flow's state comes from the states it returns


def run_all() -> list[dict]:
    """Run every flow once (the cached one twice) and describe how each ended."""
    states = [
        etl(return_state=True),
        fan_out(return_state=True),
        regions(return_state=True),
        asyncio.run(crawl(return_state=True)),
        convert(100, return_state=True),
        convert(100, return_state=True),
        quality_gate(return_state=True),
    ]
    names = [
        "tutorial-etl",
        "tutorial-fan-out",
        "tutorial-regions",
        "tutorial-async",
        "tutorial-cached",
        "tutorial-cached",
        "tutorial-quality-gate",
    ]
    return [
        {
            "flow": name,
            "state": state.name,
            "message": state.message,
            "result": state.result() if state.is_completed() else None,
        }
        for name, state in zip(names, states, strict=True)
    ]


if __name__ == "__main__":
    print(json.dumps(run_all()))
