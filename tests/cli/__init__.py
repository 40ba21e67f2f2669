"""Tests of the `orchestrator` command line, run as a real subprocess."""
