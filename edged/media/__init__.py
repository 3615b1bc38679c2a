"""Video files and pictures: probing and checking recordings, decoding a frame for an
alert's snapshot, storing snapshots, and the sample clips of the demo and the tests.

Above the ledger (`snapshot_store` keeps its key in the ledger's meta), below the stages.
"""
