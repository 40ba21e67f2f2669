"""The policies name domain-app rules by dotted path: each resolves, and a bad name is a start-up error."""

from __future__ import annotations

import pytest

from apps.orchestration import policies
from apps.orchestration.checks import orchestration_policies_check
from apps.orchestration.rules.base import Rule


def test_every_policy_entry_resolves_to_a_rule_class():
    """The engine evaluates these classes: each entry must be a Rule, in the order listed."""
    for policy in policies.POLICIES.values():
        rules = policies.resolve_policy(policy)
        assert len(rules) == len(policy)
        assert all(issubclass(rule, Rule) for rule in rules)


def test_the_system_check_passes_for_the_shipped_policies():
    """`manage.py check` is clean with the policies as shipped."""
    assert orchestration_policies_check(None) == []


def test_a_misspelled_rule_is_reported_by_the_system_check(monkeypatch):
    """A typo in policies.py is one line at start-up, naming the entry, not a failure at the first transition."""
    monkeypatch.setitem(policies.POLICIES, "flow_run", [*policies.FLOW_RUN_POLICY, "apps.work_pools.rules.NoSuchRule"])
    errors = orchestration_policies_check(None)
    assert len(errors) == 1
    assert "NoSuchRule" in errors[0].msg and errors[0].id == "orchestration.E001"


def test_an_entry_that_is_not_a_rule_is_refused():
    """Only Rule subclasses may stand in a policy."""
    with pytest.raises(TypeError, match="is not a Rule class"):
        policies.resolve_policy(["apps.orchestration.policies.resolve_policy"])
