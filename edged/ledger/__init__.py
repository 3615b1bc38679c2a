"""The durable SQLite ledger: every clip, result, alert, outage and meta value, one
transaction per transition. Every SQL statement of edged is in this package.

`clips` is `Ledger` (assembled from `results`, `outages` and `quota` on `core`'s
connection), `outbox` the alert outbox, `verdict_stats` the counts of results without a
verdict, `reports` the read-only reports (as values), `schema` the tables and their
version, `thread` the one thread the daemon reaches it through (`AsyncLedger`), `reserve`
the file that keeps a full disk from stopping a commit. Imports only the floor modules;
never a stage.
"""
