"""Builds the pipeline's parts from a validated config; shared by `run`, `upload` and `demo`."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from edged.config.cameras import FolderCamera
from edged.config.model import Config
from edged.ledger.clips import Ledger
from edged.results.listener_guard import ListenerLimits
from edged.results.matcher import build_prompts
from edged.schedule import HourRange
from edged.upload.api import AnalysisRequest, ApiClient
from edged.upload.guardrails import CameraRules, Guardrails
from edged.upload.persons import PersonDirectory, build_directory, persons_token
from edged.upload.uploader import UploadSettings


def person_directory(config: Config, ledger: Ledger) -> PersonDirectory:
    """Blocking (reads the ledger's persons token)."""
    configured = tuple((p.name, p.url, p.image) for p in config.persons)
    return build_directory(configured, config.callback.effective_public_url, persons_token(ledger))


def analysis_template(config: Config, persons: PersonDirectory) -> AnalysisRequest:
    user_prompt, system_prompt = build_prompts(
        config.api.user_prompt,
        config.api.system_prompt,
        persons.names,
        ask_unknown=config.alerts.unknown,
    )
    return AnalysisRequest(
        user_prompt=user_prompt,
        system_prompt=system_prompt,
        thinking=config.api.thinking,
        qa=config.api.qa,
        reasoning_effort=config.api.reasoning_effort,
        persons=persons.persons,
    )


def upload_settings(config: Config) -> UploadSettings:
    return UploadSettings(
        mode=config.api.mode,
        public_url=config.callback.effective_public_url,
        max_attempts=config.api.max_attempts,
        max_file_bytes=config.api.max_file_bytes,
        max_duration_s=config.api.max_duration,
        workers=config.api.max_concurrent_uploads,
        auth_retry_s=config.api.pause_probe_interval,
    )


def listener_limits(config: Config) -> ListenerLimits:
    return ListenerLimits(
        head_timeout_s=config.callback.head_timeout,
        body_timeout_s=config.callback.body_timeout,
        max_connections=config.callback.max_connections,
    )


def api_client(config: Config) -> ApiClient:
    return ApiClient(
        config.api.base_url,
        config.api.api_key.get_secret_value(),
        request_timeout_s=config.api.request_timeout,
    )


def guardrails(config: Config) -> Guardrails | None:
    """The cost guardrails the config asks for, or None when it sets none."""
    rules = {}
    for camera in config.cameras:
        if not camera.schedule and camera.budget is None:
            continue
        # A folder camera's schedule is in its timezone: key; an RTSP camera's in this machine's.
        timezone = camera.timezone if isinstance(camera, FolderCamera) else None
        rules[camera.name] = CameraRules(
            schedule=tuple(HourRange.parse(text) for text in camera.schedule),
            zone=ZoneInfo(timezone) if timezone else None,
            budget=camera.budget.budget() if camera.budget else None,
        )
    total = config.budget.budget() if config.budget else None
    if not rules and total is None:
        return None
    return Guardrails(rules, total)
