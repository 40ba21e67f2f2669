"""Helpers shared by test modules: real CLI runs and real server processes."""
