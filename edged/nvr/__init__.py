"""What the folders and file names of NVRs say about a recording: its camera and when it started.

`presets` reads a recording's path against a template (the built-in NVR layouts or a custom
regex); `times` turns the groups the path matched into a start in UTC. Pure values and
functions on the floor: no I/O, nothing of edged but `edged.names`.
"""
