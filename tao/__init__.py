"""taogram's store: objects and typed associations (TAO) on sharded SQL with a write-through cache.

A batch job needs only this package:

    from config import load_settings
    from tao import open_tao
    tao = await open_tao(load_settings())
"""

from tao.bulk_lists import ObjectFilter
from tao.errors import (
    ConflictError,
    IdLeaseLostError,
    IdSlotsExhaustedError,
    InvalidDataError,
    InvalidIdError,
    JobNotDueError,
    ObjectNotFoundError,
    ShardTimeoutError,
    ShardUnavailableError,
    TaoError,
    UnknownTypeError,
    VersionConflictError,
)
from tao.ids import shard_of, time_of
from tao.models import Assoc, ListCheck, Obj
from tao.rate_limits import Bucket, Mode, Taken
from tao.store import Tao, open_tao

__all__ = [
    "Assoc", "Bucket", "ConflictError", "IdLeaseLostError", "IdSlotsExhaustedError",
    "InvalidDataError", "InvalidIdError", "JobNotDueError", "ListCheck", "Mode",
    "Obj", "ObjectFilter", "ObjectNotFoundError",
    "ShardTimeoutError", "ShardUnavailableError", "Taken", "Tao", "TaoError", "UnknownTypeError",
    "VersionConflictError", "open_tao",
    "shard_of", "time_of",
]
