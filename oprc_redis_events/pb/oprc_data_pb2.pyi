from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VAL_TYPE_BYTE: _ClassVar[ValType]
    VAL_TYPE_CRDT_MAP: _ClassVar[ValType]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNKNOWN: _ClassVar[EventType]
    EVENT_TYPE_FUNC_COMPLETE: _ClassVar[EventType]
    EVENT_TYPE_FUNC_ERROR: _ClassVar[EventType]
    EVENT_TYPE_DATA_CREATE: _ClassVar[EventType]
    EVENT_TYPE_DATA_UPDATE: _ClassVar[EventType]
    EVENT_TYPE_DATA_DELETE: _ClassVar[EventType]
VAL_TYPE_BYTE: ValType
VAL_TYPE_CRDT_MAP: ValType
EVENT_TYPE_UNKNOWN: EventType
EVENT_TYPE_FUNC_COMPLETE: EventType
EVENT_TYPE_FUNC_ERROR: EventType
EVENT_TYPE_DATA_CREATE: EventType
EVENT_TYPE_DATA_UPDATE: EventType
EVENT_TYPE_DATA_DELETE: EventType

class ObjMeta(_message.Message):
    __slots__ = ("cls_id", "partition_id", "object_id", "object_id_str")
    CLS_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_STR_FIELD_NUMBER: _ClassVar[int]
    cls_id: str
    partition_id: int
    object_id: int
    object_id_str: str
    def __init__(self, cls_id: _Optional[str] = ..., partition_id: _Optional[int] = ..., object_id: _Optional[int] = ..., object_id_str: _Optional[str] = ...) -> None: ...

class ValData(_message.Message):
    __slots__ = ("data", "type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    type: ValType
    def __init__(self, data: _Optional[bytes] = ..., type: _Optional[_Union[ValType, str]] = ...) -> None: ...

class ObjData(_message.Message):
    __slots__ = ("metadata", "entries", "event", "entries_str")
    class EntriesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: ValData
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[ValData, _Mapping]] = ...) -> None: ...
    class EntriesStrEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ValData
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ValData, _Mapping]] = ...) -> None: ...
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_STR_FIELD_NUMBER: _ClassVar[int]
    metadata: ObjMeta
    entries: _containers.MessageMap[int, ValData]
    event: ObjectEvent
    entries_str: _containers.MessageMap[str, ValData]
    def __init__(self, metadata: _Optional[_Union[ObjMeta, _Mapping]] = ..., entries: _Optional[_Mapping[int, ValData]] = ..., event: _Optional[_Union[ObjectEvent, _Mapping]] = ..., entries_str: _Optional[_Mapping[str, ValData]] = ...) -> None: ...

class ObjectEvent(_message.Message):
    __slots__ = ("func_trigger", "data_trigger", "data_trigger_str")
    class FuncTriggerEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FuncTrigger
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FuncTrigger, _Mapping]] = ...) -> None: ...
    class DataTriggerEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: DataTrigger
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[DataTrigger, _Mapping]] = ...) -> None: ...
    class DataTriggerStrEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DataTrigger
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DataTrigger, _Mapping]] = ...) -> None: ...
    FUNC_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    DATA_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    DATA_TRIGGER_STR_FIELD_NUMBER: _ClassVar[int]
    func_trigger: _containers.MessageMap[str, FuncTrigger]
    data_trigger: _containers.MessageMap[int, DataTrigger]
    data_trigger_str: _containers.MessageMap[str, DataTrigger]
    def __init__(self, func_trigger: _Optional[_Mapping[str, FuncTrigger]] = ..., data_trigger: _Optional[_Mapping[int, DataTrigger]] = ..., data_trigger_str: _Optional[_Mapping[str, DataTrigger]] = ...) -> None: ...

class FuncTrigger(_message.Message):
    __slots__ = ("on_complete", "on_error")
    ON_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    ON_ERROR_FIELD_NUMBER: _ClassVar[int]
    on_complete: _containers.RepeatedCompositeFieldContainer[TriggerTarget]
    on_error: _containers.RepeatedCompositeFieldContainer[TriggerTarget]
    def __init__(self, on_complete: _Optional[_Iterable[_Union[TriggerTarget, _Mapping]]] = ..., on_error: _Optional[_Iterable[_Union[TriggerTarget, _Mapping]]] = ...) -> None: ...

class DataTrigger(_message.Message):
    __slots__ = ("on_create", "on_update", "on_delete")
    ON_CREATE_FIELD_NUMBER: _ClassVar[int]
    ON_UPDATE_FIELD_NUMBER: _ClassVar[int]
    ON_DELETE_FIELD_NUMBER: _ClassVar[int]
    on_create: _containers.RepeatedCompositeFieldContainer[TriggerTarget]
    on_update: _containers.RepeatedCompositeFieldContainer[TriggerTarget]
    on_delete: _containers.RepeatedCompositeFieldContainer[TriggerTarget]
    def __init__(self, on_create: _Optional[_Iterable[_Union[TriggerTarget, _Mapping]]] = ..., on_update: _Optional[_Iterable[_Union[TriggerTarget, _Mapping]]] = ..., on_delete: _Optional[_Iterable[_Union[TriggerTarget, _Mapping]]] = ...) -> None: ...

class TriggerTarget(_message.Message):
    __slots__ = ("cls_id", "partition_id", "object_id", "fn_id", "req_options", "object_id_str")
    class ReqOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLS_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    FN_ID_FIELD_NUMBER: _ClassVar[int]
    REQ_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_STR_FIELD_NUMBER: _ClassVar[int]
    cls_id: str
    partition_id: int
    object_id: int
    fn_id: str
    req_options: _containers.ScalarMap[str, str]
    object_id_str: str
    def __init__(self, cls_id: _Optional[str] = ..., partition_id: _Optional[int] = ..., object_id: _Optional[int] = ..., fn_id: _Optional[str] = ..., req_options: _Optional[_Mapping[str, str]] = ..., object_id_str: _Optional[str] = ...) -> None: ...

class EventInfo(_message.Message):
    __slots__ = ("source_cls_id", "source_partition_id", "source_object_id", "event_type", "fn_id", "key", "timestamp", "context", "source_object_id_str", "key_str")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_CLS_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FN_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OBJECT_ID_STR_FIELD_NUMBER: _ClassVar[int]
    KEY_STR_FIELD_NUMBER: _ClassVar[int]
    source_cls_id: str
    source_partition_id: int
    source_object_id: int
    event_type: EventType
    fn_id: str
    key: int
    timestamp: int
    context: _containers.ScalarMap[str, str]
    source_object_id_str: str
    key_str: str
    def __init__(self, source_cls_id: _Optional[str] = ..., source_partition_id: _Optional[int] = ..., source_object_id: _Optional[int] = ..., event_type: _Optional[_Union[EventType, str]] = ..., fn_id: _Optional[str] = ..., key: _Optional[int] = ..., timestamp: _Optional[int] = ..., context: _Optional[_Mapping[str, str]] = ..., source_object_id_str: _Optional[str] = ..., key_str: _Optional[str] = ...) -> None: ...

class TriggerPayload(_message.Message):
    __slots__ = ("event_info", "original_payload", "previous_payload")
    EVENT_INFO_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    event_info: EventInfo
    original_payload: bytes
    previous_payload: bytes
    def __init__(self, event_info: _Optional[_Union[EventInfo, _Mapping]] = ..., original_payload: _Optional[bytes] = ..., previous_payload: _Optional[bytes] = ...) -> None: ...

class TriggerBatch(_message.Message):
    __slots__ = ("triggers",)
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    triggers: _containers.RepeatedCompositeFieldContainer[TriggerPayload]
    def __init__(self, triggers: _Optional[_Iterable[_Union[TriggerPayload, _Mapping]]] = ...) -> None: ...
