"""`upload: frigate`: Frigate's own review items decide which recordings are uploaded.

A folder camera with `preset: frigate` subscribes to `<topic_prefix>/reviews` on the broker
Frigate uses, and uploads the recordings that overlap a review item (with the rolls) whose
objects include one of `labels` and whose severity is one of `severities`. A recording found
before its review waits for it up to `wait`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edged.config.broker import BrokerConfig, TopicPrefix
from edged.config.fields import Duration, Text

Severity = Literal["alert", "detection"]


class FrigateGateConfig(BrokerConfig):
    topic_prefix: TopicPrefix = "frigate"
    labels: Annotated[tuple[Text, ...], Field(min_length=1)] = ("person",)
    severities: Annotated[tuple[Severity, ...], Field(min_length=1)] = ("alert", "detection")
    #: How long a recording without a review waits for one before it is kept back.
    wait: Duration = 30.0
    pre_roll: Duration = 5.0
    post_roll: Duration = 5.0
    #: Consecutive recordings that go are joined into one upload, up to max_event.
    events: bool = True
    max_event: Annotated[Duration, Field(ge=60)] = 600.0
