"""The local stand-in for the memories.ai security API: its public face.

Tests, `edged demo`, `edged emulate` and the benches import it from here
(`from edged.emulator import Emulator, EmulatorOptions, run_emulator`); the modules behind it
are the app and its endpoints (`app`, `answers`, `upload`, `callbacks`, `multipart`), what the
service says (`protocol`), what it can be told to do (`options`) and how it is run (`run`).
The emulator imports nothing else of edged but `edged.errors` (its error base) and `edged.aio`
(`serving`, to run its app as edged runs its own): it speaks for the service, not for the
daemon.
"""

from edged.emulator.run import (
    ENDPOINTS,
    ENVELOPES,
    CallbackRecord,
    Emulator,
    EmulatorOptions,
    OptionError,
    ReceivedRequest,
    add_arguments,
    main,
    options_from_args,
    run_emulator,
    run_from_args,
    serve,
)

__all__ = [
    "ENDPOINTS",
    "ENVELOPES",
    "CallbackRecord",
    "Emulator",
    "EmulatorOptions",
    "OptionError",
    "ReceivedRequest",
    "add_arguments",
    "main",
    "options_from_args",
    "run_emulator",
    "run_from_args",
    "serve",
]
