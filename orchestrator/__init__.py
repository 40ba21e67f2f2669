"""Workflow orchestration for Python teams.

This package is also the SDK's public surface. Importing it must stay cheap: it never imports Django;
the server side loads only when a run is recorded in-process or a server command starts.
"""

__version__ = "0.1.0"
API_VERSION = "0.1.0"
