#!/usr/bin/env python
"""Django's command-line utility; the same verbs as the `orchestrator` command."""

import sys

from orchestrator.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
