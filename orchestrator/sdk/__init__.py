"""The client side: decorators, the run engine, futures, task runners, results, logging and the API client.

Nothing here imports Django at import time; the in-process (ephemeral) client loads it when a run starts.
"""
