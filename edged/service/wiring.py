"""Builds the pipeline's parts from a validated config; shared by `run`, `upload` and `demo`.

The upload half (persons, the analysis request, upload settings, guardrails, the API
client) and the alert half (policy, snapshots, sinks, the analyzer and delivery);
edged/service/pipeline.py puts them together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from edged.alerts.analyzer import Analyzer
from edged.alerts.base import SinkContext
from edged.alerts.delivery import AlertDelivery
from edged.alerts.policy import AlertPolicy, PersonRule, quiet_window
from edged.alerts.registry import build_sinks, sink_names
from edged.config.alerts import UNKNOWN_PERSON
from edged.config.cameras import FolderCamera
from edged.config.model import Config
from edged.ledger.thread import AsyncLedger
from edged.media.snapshot_store import SNAPSHOT_DIR, SnapshotStore, snapshot_key
from edged.results.listener_guard import ListenerLimits
from edged.results.matcher import build_prompts
from edged.schedule import HourRange
from edged.upload.api import AnalysisRequest, ApiClient
from edged.upload.guardrails import CameraRules, Guardrails
from edged.upload.persons import PersonDirectory, build_directory, persons_token
from edged.upload.uploader import UploadSettings


async def person_directory(config: Config, db: AsyncLedger) -> PersonDirectory:
    """The persons' URLs, with the image token the ledger keeps."""
    token = await db.call(persons_token, db.ledger)
    configured = tuple((p.name, p.url, p.image) for p in config.persons)
    return build_directory(configured, config.callback.effective_public_url, token)


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


# -- the alert half ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertStages:
    analyzer: Analyzer
    delivery: AlertDelivery
    snapshots: SnapshotStore  # also served by the callback listener for `snapshot: url`


def alert_policy(config: Config, person_names: Sequence[str]) -> AlertPolicy:
    alerts = config.alerts
    rules = {
        person.name: PersonRule(
            alert=person.alert == "always",
            only=frozenset(person.cameras.only) if person.cameras and person.cameras.only else None,
            excluded=frozenset(person.cameras.except_ or ()) if person.cameras else frozenset(),
        )
        for person in config.persons
    }
    windows = tuple(
        quiet_window(rule.hours, cameras=rule.cameras, days=rule.days, timezone=rule.timezone)
        for rule in alerts.quiet_hours
    )
    return AlertPolicy(
        person_names=tuple(person_names),
        min_confidence=alerts.min_confidence,
        sink_names=tuple(sink_names([sink.type for sink in alerts.sinks])),
        instance=config.instance,
        persons=rules,
        quiet_hours=windows,
        unknown=alerts.unknown,
    )


def known_cameras(config: Config) -> tuple[str, ...]:
    """Camera names clips will carry, as far as the config tells (a preset folder names its
    cameras from paths; those appear once their first clip does)."""
    names: list[str] = []
    for camera in config.cameras:
        if isinstance(camera, FolderCamera) and camera.preset is not None:
            names.extend(camera.cameras or ())
        else:
            names.append(camera.name)
    return tuple(dict.fromkeys(names))


async def alert_stages(config: Config, db: AsyncLedger, person_names: Sequence[str]) -> AlertStages:
    key = await db.call(snapshot_key, db.ledger)
    snapshots = SnapshotStore(
        config.storage.dir / SNAPSHOT_DIR,
        config.alerts.snapshot_retention,
        key=key,
        public_url=config.callback.effective_public_url,
    )
    policy = alert_policy(config, person_names)
    alerting = [name for name in person_names if policy.persons.get(name, PersonRule()).alert]
    if config.alerts.unknown:
        alerting.append(UNKNOWN_PERSON)
    context = SinkContext(
        instance=config.instance,
        snapshots=snapshots,
        persons=tuple(alerting),
        cameras=known_cameras(config),
        db=db,
    )
    delivery = AlertDelivery(
        db,
        build_sinks(config.alerts.sinks, context),
        cooldown_s=config.alerts.cooldown,
        retry_max_age_s=config.alerts.retry_max_age,
        max_per_hour=config.alerts.max_per_hour,
    )
    analyzer = Analyzer(db, policy, snapshots=snapshots, on_alerts=delivery.wake)
    return AlertStages(analyzer, delivery, snapshots)
