"""The config: YAML in, frozen validated sections out, every problem reported at once.

`model` is `Config` (`parse_config`, `load_config`), the whole made of the sections in their
own modules: `service` (api, callback, storage, metrics), `cameras` (folder and RTSP cameras),
`sinks` (one model per alert sink type) and `alerts` (the alert policy). They are built on
`base` (`ConfigModel`, the base of every section) and `fields` (checks of single values, over
`units`: durations, sizes). `source` reads the text (YAML with the line of every key, ${ENV},
`<key>_file` secrets) and `problems` finds and words what is wrong. `secrets` says which values
are secret, `notes` and `listener_role` what a config implies. Imports only the floor modules
(`edged.schedule`, `edged.nvr`, ...).
"""
