"""The state: what reconciler created, what it sent and what is still in flight.

`model` holds the pure values and their updates (the planner imports only it), `store` the
file I/O (atomic save, backup, lineage/serial guard) and `lock` the `<state>.lock` protocol.
Import those modules directly; this package imports nothing on its own, so that reading the
model does not load the file machinery.
"""
