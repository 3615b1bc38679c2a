"""The command-line commands other than `edged run`: one module each (`upload`,
`backfill`, `status` with `trace` for one clip, `demo`). They sit on top: they may use any
package, and nothing imports them but `edged.cli`.
"""
