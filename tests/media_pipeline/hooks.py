"""Moderation checks used by the tests (named in `media.moderation_hook`)."""

from media_pipeline import Allow, Reject


def reject_landscape(probe, path):
    return Reject("landscape media is not allowed here") if probe.width > probe.height else Allow()
