"""The sections about the service and edged's own resources: the API (`api`), the public
callback listener (`callback`), edged's storage (`storage`) and the private metrics
listener (`metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from edged.config.base import Section
from edged.config.fields import (
    ConfigPath,
    HostPort,
    HttpUrl,
    ReasoningEffort,
    Secret,
    Text,
    Timeout,
    split_host_port,
)
from edged.config.units import Duration, Size


class ApiConfig(Section):
    """The memories.ai security API: where, with which key and prompts, within which limits."""

    secret_files = ("api_key",)

    base_url: HttpUrl = "https://security.memories.ai"
    api_key: Secret
    mode: Literal["async", "sync"] = "async"
    user_prompt: Text = "Describe what happens. Say which of the reference persons appear."
    system_prompt: Text = "You are a security camera analyst."
    thinking: bool = False
    qa: bool = False
    reasoning_effort: ReasoningEffort = None
    max_concurrent_uploads: Annotated[int, Field(ge=1, le=64)] = 2
    max_attempts: Annotated[int, Field(ge=1)] = 5
    request_timeout: Timeout = 600.0
    max_file_bytes: Size = 8 * 10**9
    max_duration: Timeout = 7200.0
    #: While uploads are paused (refused key, no credit, no permission): one try this often.
    pause_probe_interval: Timeout = 300.0
    #: On a stop, how long uploads in flight and the results they wait for are given.
    shutdown_grace: Timeout = 20.0


class CallbackConfig(Section):
    """The public listener that receives results; durations in seconds."""

    listen: HostPort = "0.0.0.0:8080"
    public_url: HttpUrl | None = None
    result_timeout: Timeout = 1800.0
    #: Limits of the public listener (edged/results/listener_guard.py): a request head must arrive
    #: within head_timeout of connecting or of the last answer, a body within body_timeout.
    head_timeout: Timeout = 10.0
    body_timeout: Timeout = 30.0
    max_connections: Annotated[int, Field(ge=8, le=65536)] = 256

    @property
    def host(self) -> str:
        return split_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return split_host_port(self.listen)[1]

    @property
    def effective_public_url(self) -> str:
        """public_url, or a loopback URL that only works when the API runs on this host."""
        return self.public_url or f"http://127.0.0.1:{self.port}"


class StorageConfig(Section):
    """edged's own state; sizes in bytes, durations in seconds."""

    dir: ConfigPath = Path("/var/lib/edged")
    max_bytes: Size | None = None
    min_free: Size = 10**9
    keep_uploaded: Duration = 0.0


class MetricsConfig(Section):
    """The private listener for /metrics and /healthz; listen None turns it off."""

    listen: HostPort | None = "127.0.0.1:9464"

    @property
    def host(self) -> str | None:
        return split_host_port(self.listen)[0] if self.listen else None

    @property
    def port(self) -> int | None:
        return split_host_port(self.listen)[1] if self.listen else None
