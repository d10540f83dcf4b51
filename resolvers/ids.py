"""Validating store ids that arrive from clients, before they reach the store."""

from __future__ import annotations

from tao.errors import InvalidIdError
from tao.ids import check_id


def check_object_id(obj_id: int, n_shards: int) -> bool:
    """True if `obj_id` could name an object on one of the `n_shards` logical shards."""
    try:
        check_id(obj_id, n_shards)
    except InvalidIdError:
        return False
    return True
