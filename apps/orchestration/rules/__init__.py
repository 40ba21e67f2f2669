"""Orchestration rules, one module per family; `apps.orchestration.policies` orders them."""
