"""Builds the alert half of the pipeline from the config: policy, snapshots, sinks, stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
