"""The durable SQLite ledger: every clip, result, alert, outage and meta value, one
transaction per transition.

`clips` is `Ledger` (assembled from `results`, `outages` and `quota` on `core`'s
connection), `schema` the tables and their version, `thread` the one thread the daemon
reaches it through (`AsyncLedger`), `reserve` the file that keeps a full disk from
stopping a commit. Imports only the floor modules; never a stage.
"""
