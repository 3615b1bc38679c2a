"""The secrets a config holds: what the log formatter must hide, and whether the file leaks them.

Secrets are the API key, webhook secrets, MQTT passwords (of the sinks and of Frigate's
broker) and the passwords in camera URLs.
Whoever can read the config file can read a secret written into it; one given as `${ENV}` or
`*_file` is not in the file, so only a secret whose value appears in the file's text counts.
"""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import unquote

from edged.config.cameras import FolderCamera, RtspCamera
from edged.config.model import Config
from edged.config.sinks import MqttSinkConfig, WebhookSinkConfig
from edged.logs import url_password


def config_secrets(config: Config) -> dict[str, str]:
    """Dotted key → secret value, for every secret set in `config`."""
    found = {"api.api_key": config.api.api_key.get_secret_value()}
    for index, sink in enumerate(config.alerts.sinks):
        if isinstance(sink, WebhookSinkConfig) and sink.secret is not None:
            found[f"alerts.sinks[{index}].secret"] = sink.secret.get_secret_value()
        if isinstance(sink, MqttSinkConfig) and sink.password is not None:
            found[f"alerts.sinks[{index}].password"] = sink.password.get_secret_value()
    for index, camera in enumerate(config.cameras):
        frigate = camera.frigate if isinstance(camera, FolderCamera) else None
        if frigate is not None and frigate.password is not None:
            found[f"cameras[{index}].frigate.password"] = frigate.password.get_secret_value()
    urls = {"api.base_url": config.api.base_url, "callback.public_url": config.callback.public_url}
    for index, sink in enumerate(config.alerts.sinks):
        if isinstance(sink, WebhookSinkConfig):
            urls[f"alerts.sinks[{index}].url"] = sink.url
    for index, person in enumerate(config.persons):
        urls[f"persons[{index}].url"] = person.url
    for index, camera in enumerate(config.cameras):
        if isinstance(camera, RtspCamera):
            urls[f"cameras[{index}].rtsp"] = camera.rtsp
        if camera.activity is not None and camera.activity.rtsp is not None:
            urls[f"cameras[{index}].activity.rtsp"] = camera.activity.rtsp
    for key, url in urls.items():
        # The userinfo structurally (before the last `@`): a password may hold `/`, `@`, spaces.
        password = url_password(url) if url else None
        if password:
            # Both spellings: the URL may carry it percent-encoded, a library may print it decoded.
            found[key] = password
            found[f"{key} (decoded)"] = unquote(password)
    return found


def exposed_secrets(config_path: Path, config: Config) -> list[str]:
    """The keys whose secret is written in `config_path` while other users may read the file;
    empty when the file is private to its owner and group."""
    try:
        mode = config_path.stat().st_mode
        if not mode & stat.S_IROTH:
            return []
        text = config_path.read_text(encoding="utf-8")
    except OSError:
        return []  # the loader already read it; a file gone since then exposes nothing
    return sorted(
        key
        for key, value in config_secrets(config).items()
        if not key.endswith("(decoded)") and value in text
    )
