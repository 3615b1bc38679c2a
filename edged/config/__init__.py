"""The config: YAML in, frozen validated sections out, every problem reported at once.

`model` is `Config` and its sections, `alerts` the alert sections, `fields` the field types
(over `units`: durations, sizes), `problems` the source (YAML with line marks, ${ENV}, *_file
secrets) and the wording of problems, `secrets` which values are secret, `notes` and
`listener_role` what a config implies. Imports only the floor modules (`edged.schedule`,
`edged.nvr`, ...).
"""
