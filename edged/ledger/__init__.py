"""The durable SQLite ledger: every clip, result, alert, outage and meta value, one
transaction per transition. Every SQL statement of edged is in this package.

`store.Ledger` is one connection (`connection`) with a repository for each kind of record on
it: `clips`, `uploads` (a clip's upload transitions), `results`, `outbox` (alerts),
`outages`, `quota` (what the storage quota asks), `meta`, `verdict_stats` (results without
a verdict) and `reports` (read-only, as values). `schema` holds the tables and their
version, `thread` the one thread the daemon reaches it through (`AsyncLedger`), `reserve`
the file that keeps a full disk from stopping a commit. Imports only the floor modules;
never a stage.
"""
