"""The notifications domain's error codes (payload errors of its mutations)."""

from __future__ import annotations

import enum


class NotificationErrorCode(enum.Enum):
    INVALID_PAUSE = "INVALID_PAUSE"
    INVALID_CURSOR = "INVALID_CURSOR"
    INVALID_ENDPOINT = "INVALID_ENDPOINT"
    INVALID_KEYS = "INVALID_KEYS"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    SUBSCRIPTION_NOT_FOUND = "SUBSCRIPTION_NOT_FOUND"
