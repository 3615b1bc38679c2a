"""The result stage: the public callback listener and the reading of a result.

`listener` is the listener (with `listener_guard`'s connection limits and `rejections`'
counts), `matcher` reads who a result names (the fenced verdict in `verdict`, the prose in
`prose`).
"""
