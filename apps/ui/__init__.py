"""The live pages under /ui/: admin-style views of runs, deployments, work pools and limits (docs/ui.md)."""
