"""Workers: processes that execute the flow runs of work pools (docs/workers.md).

`process` is the polling worker of `process` pools (`orchestrator worker start`), `execute` the subprocess it
starts for each run, `loading` how a deployment's flow is imported from its `path` and `entrypoint`.
"""
