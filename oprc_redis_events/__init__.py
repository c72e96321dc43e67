"""oprc-redis-events: OPRC-style object events for objects kept in Redis."""

from __future__ import annotations

from .client.aio.store import AsyncObjectStore
from .client.aio.wrapper import AsyncEventedPipeline, AsyncEventedRedis
from .client.core import ObjectRecord, WriteResult
from .client.sync_generated.store import ObjectStore
from .client.sync_generated.wrapper import EventedPipeline, EventedRedis
from .config import Settings
from .errors import (
    CaptureError,
    ConfigError,
    CorruptedStateError,
    InvalidIdError,
    InvalidTriggerError,
    InvalidValueError,
    ObjectExistsError,
    ObjectNotFoundError,
    OprcEventsError,
    PermissionDeniedError,
    RedisUnavailableError,
    UnsupportedCommandError,
    WriteOutcomeUnknownError,
    ZenohUnavailableError,
)
from .functions.host import FunctionHost, InvocationContext
from .pb.oprc_data_pb2 import (
    DataTrigger,
    EventInfo,
    EventType,
    FuncTrigger,
    ObjData,
    ObjectEvent,
    ObjMeta,
    TriggerPayload,
    TriggerTarget,
    ValData,
    ValType,
)
from .pb.oprc_invoke_pb2 import (
    InvocationRequest,
    InvocationResponse,
    ObjectInvocationRequest,
    ResponseStatus,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncEventedPipeline",
    "AsyncEventedRedis",
    "AsyncObjectStore",
    "CaptureError",
    "ConfigError",
    "CorruptedStateError",
    "DataTrigger",
    "EventInfo",
    "EventType",
    "EventedPipeline",
    "EventedRedis",
    "FuncTrigger",
    "FunctionHost",
    "InvalidIdError",
    "InvalidTriggerError",
    "InvalidValueError",
    "InvocationContext",
    "InvocationRequest",
    "InvocationResponse",
    "ObjData",
    "ObjMeta",
    "ObjectEvent",
    "ObjectExistsError",
    "ObjectInvocationRequest",
    "ObjectNotFoundError",
    "ObjectRecord",
    "ObjectStore",
    "OprcEventsError",
    "PermissionDeniedError",
    "RedisUnavailableError",
    "ResponseStatus",
    "Settings",
    "TriggerPayload",
    "TriggerTarget",
    "UnsupportedCommandError",
    "ValData",
    "ValType",
    "WriteOutcomeUnknownError",
    "WriteResult",
    "ZenohUnavailableError",
    "__version__",
]
