"""Alerts: analyzed clips become alerts (`analyzer`, by the `policy`), queued in the ledger's
outbox with the clip done in one transaction, then delivered at least once to every sink
(`delivery`, one worker per sink, so a sink that is down never delays the others). A sink is one
module here (`log`, `webhook`, `mqtt`, `command`) on the contract of `base`, found by `registry`.
"""
