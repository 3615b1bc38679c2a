"""Sources: where clips come from. Each camera has one (`folder`: finished recordings in an NVR
folder, read by `recordings`; `rtsp`: a stream edged cuts into clips itself, reconnecting and
recording an outage while the camera is away); it adds every finished clip to the ledger and
returns only when cancelled.
"""
