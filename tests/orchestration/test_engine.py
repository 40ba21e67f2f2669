"""The engine itself (apps/orchestration/engine.py): forced changes, the record of every change, the answer."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction

from apps.events.models import Event
from apps.orchestration import engine
from apps.runs import services
from apps.runs.models import FlowRunState, TaskRunState
from orchestrator.states import Completed, Failed, Pending, Running, Scheduled, State, utcnow
from tests.orchestration.helpers import check_proposal, flow_run_in, history_names, propose, task_run_in

pytestmark = pytest.mark.django_db


def _events(run) -> list[Event]:
    return list(Event.objects.filter(resource_id=run.id).order_by("id"))


class TestForcedChanges:
    @pytest.mark.parametrize(
        ("initial", "proposal", "stored"),
        [
            ("Completed", Running, "Running"),
            ("Pending", Pending, "Pending"),
            ("Crashed", Running, "Running"),
            ("Failed", Completed, "Completed"),
        ],
    )
    def test_a_forced_change_skips_the_rules(self, flow, initial, proposal, stored):
        """An operator's override (or a server service marking a crash) must not be refused by the policy."""
        run = flow_run_in(flow, initial)
        assert propose(run, proposal()).status != engine.Status.ACCEPT

        check_proposal(run, proposal(), "ACCEPT", stored, force=True)

    def test_a_forced_change_is_recorded_like_any_other(self, flow):
        """Skipping the rules must never skip the history, the run details or the event."""
        run = flow_run_in(flow, "Completed")
        history_before = run.states.count()

        result = propose(run, Running(message="operator"), force=True)

        run.refresh_from_db()
        assert result.state.state_details["forced"] is True
        assert run.state_details["forced"] is True
        assert run.states.count() == history_before + 1
        assert run.states.order_by("-timestamp", "-created").first().state_details["forced"] is True
        assert (run.run_count, run.end_time) == (2, None)
        event = _events(run)[-1]
        assert event.payload["forced"] is True
        assert event.payload["state"]["name"] == "Running"

    def test_an_ordinary_change_is_not_marked_forced(self, flow):
        """The forced marker must single out overrides, or it tells an auditor nothing."""
        run = flow_run_in(flow, "Running")

        result = propose(run, Completed())

        assert "forced" not in result.state.state_details
        assert _events(run)[-1].payload["forced"] is False


class TestTheRecord:
    @pytest.mark.parametrize("kind", ["flow_run", "task_run"])
    def test_an_accepted_change_writes_one_history_row_and_one_event(self, flow, kind):
        """History and outbox are what the UI, notifications and audits read: neither may miss or repeat."""
        run = (
            flow_run_in(flow, "Running") if kind == "flow_run" else task_run_in(flow_run_in(flow, "Running"), "Running")
        )
        history_before, events_before = run.states.count(), len(_events(run))

        result = propose(run, Completed(message="done", data={"value": 1}))

        run.refresh_from_db()
        assert run.states.count() == history_before + 1
        events = _events(run)
        assert len(events) == events_before + 1
        row = run.states.get(pk=result.state.id)
        assert (row.type, row.name, row.message, row.data) == ("COMPLETED", "Completed", "done", {"value": 1})
        assert run.state_id == row.id
        event = events[-1]
        assert event.name == f"{kind}.state_changed"
        assert event.payload["initial_state_type"] == "RUNNING"
        assert event.payload["state"]["id"] == str(row.id)
        expected_flow_run_id = run.id if kind == "flow_run" else run.flow_run_id
        assert event.payload["flow_run_id"] == str(expected_flow_run_id)

    def test_a_replacement_state_is_recorded_once_in_place_of_the_proposal(self, flow):
        """A retry stores AwaitingRetry instead of Failed: one row, one event, and no trace of a Failed row."""
        run = flow_run_in(flow, "Running", empirical_policy={"retries": 1})

        check_proposal(run, Failed(), "REJECT", "AwaitingRetry")

        assert history_names(run) == ["Pending", "Running", "AwaitingRetry"]
        assert [event.payload["state"]["name"] for event in _events(run)] == ["Pending", "Running", "AwaitingRetry"]

    def test_history_and_event_roll_back_with_the_change(self, flow):
        """They share the change's transaction: if it rolls back, no event announces a change that never was."""
        run = flow_run_in(flow, "Running")
        history_before, events_before = run.states.count(), len(_events(run))

        with pytest.raises(RuntimeError), transaction.atomic():
            assert propose(run, Completed()).accepted
            raise RuntimeError("the caller's transaction fails after the proposal")

        run.refresh_from_db()
        assert run.state_name == "Running"
        assert (run.states.count(), len(_events(run))) == (history_before, events_before)

    def test_the_history_is_the_sequence_of_accepted_states(self, flow):
        """Reading the history back gives every stored state, oldest first, with the run's current one last."""
        run = flow_run_in(flow, "Completed")

        states = [row.as_state() for row in run.states.order_by("timestamp", "created")]

        assert [state.name for state in states] == ["Pending", "Running", "Completed"]
        assert states[-1].id == run.state_id
        assert all(a.timestamp <= b.timestamp for a, b in zip(states, states[1:], strict=False))


class TestDeletedRuns:
    @pytest.mark.parametrize("kind", ["flow_run", "task_run"])
    def test_a_proposal_on_a_deleted_run_is_aborted_without_writing(self, flow, kind):
        """A client still working on a deleted run must stop, and must not resurrect it or emit events."""
        run = flow_run_in(flow, "Running") if kind == "flow_run" else task_run_in(None, "Running")
        run_id = run.id
        if kind == "flow_run":
            services.flow_run_delete(run=run)
        else:
            run.delete()  # task runs have no delete service; they go with their flow run
        counts_before = (FlowRunState.objects.count(), TaskRunState.objects.count(), Event.objects.count())

        result = engine.propose_state(kind=kind, run_id=run_id, state=Completed())

        assert result.status == engine.Status.ABORT
        assert result.state is None
        assert "does not exist" in result.reason
        assert (FlowRunState.objects.count(), TaskRunState.objects.count(), Event.objects.count()) == counts_before

    def test_a_forced_proposal_on_a_deleted_run_is_aborted_too(self, flow):
        """Force skips rules, not existence."""
        run = flow_run_in(flow, "Running")
        run_id = run.id
        services.flow_run_delete(run=run)
        events_before = Event.objects.count()

        result = engine.propose_state(kind="flow_run", run_id=run_id, state=Completed(), force=True)

        assert (result.status, result.state) == (engine.Status.ABORT, None)
        assert Event.objects.count() == events_before
        assert not FlowRunState.objects.filter(flow_run_id=run_id).exists()

    def test_a_proposal_on_an_id_that_never_existed_is_aborted(self, db):
        """A wrong id gets the same clear answer as a deleted run."""
        result = engine.propose_state(kind="task_run", run_id=uuid.uuid4(), state=Running())

        assert (result.status, result.state) == (engine.Status.ABORT, None)


class TestTheAnswer:
    STATE_KEYS = {"id", "type", "name", "timestamp", "message", "state_details", "data"}

    @pytest.mark.parametrize(
        ("initial", "proposal", "status", "force"),
        [
            ("Running", Completed, "ACCEPT", False),
            ("Completed", Running, "REJECT", False),
            ("Pending", Pending, "ABORT", False),
            ("Completed", Running, "ACCEPT", True),
        ],
    )
    def test_the_answer_has_the_documented_shape(self, flow, initial, proposal, status, force):
        """Clients (the SDK, workers, the UI) parse this JSON; its shape is part of the API contract."""
        run = flow_run_in(flow, initial)

        payload = propose(run, proposal(), force=force).to_json()

        assert set(payload) == {"status", "state", "details"}
        assert payload["status"] == status
        assert set(payload["state"]) == self.STATE_KEYS
        assert set(payload["details"]) == {"reason", "delay_seconds"}
        assert isinstance(payload["details"]["delay_seconds"], float | int)
        run.refresh_from_db()
        assert payload["state"]["id"] == str(run.state_id)
        assert payload["state"]["name"] == run.state_name
        if status == "ACCEPT":
            assert payload["details"]["reason"] is None
        else:
            assert payload["details"]["reason"]

    def test_a_wait_answer_says_how_long(self, flow):
        """A client told to wait must know for how long, in seconds, and why."""
        run = flow_run_in(flow, [lambda: Scheduled(scheduled_time=utcnow() + timedelta(seconds=90))])

        payload = propose(run, Running()).to_json()

        assert payload["status"] == "WAIT"
        assert payload["state"]["name"] == "Scheduled"
        assert 85 <= payload["details"]["delay_seconds"] <= 90
        assert "scheduled" in payload["details"]["reason"]

    def test_the_answer_for_a_deleted_run_has_no_state(self, db):
        """The shape holds even when there is no run: state is null, the reason says why."""
        payload = engine.propose_state(kind="flow_run", run_id=uuid.uuid4(), state=Running()).to_json()

        assert payload == {
            "status": "ABORT",
            "state": None,
            "details": {"reason": payload["details"]["reason"], "delay_seconds": 0.0},
        }
        assert payload["details"]["reason"]

    def test_a_state_round_trips_through_json(self, flow):
        """The SDK rebuilds the state from the answer; nothing may be lost on the way."""
        run = flow_run_in(flow, "Running")

        result = propose(run, Completed(message="ok", data={"rows": 3}, state_details={"transition_id": "t"}))
        rebuilt = State.from_json(result.to_json()["state"])

        assert (rebuilt.id, rebuilt.type, rebuilt.name, rebuilt.message) == (
            result.state.id,
            result.state.type,
            "Completed",
            "ok",
        )
        assert rebuilt.data == {"rows": 3}
        assert rebuilt.state_details["transition_id"] == "t"
        assert rebuilt.timestamp == result.state.timestamp
