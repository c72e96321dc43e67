from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResponseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OKAY: _ClassVar[ResponseStatus]
    INVALID_REQUEST: _ClassVar[ResponseStatus]
    APP_ERROR: _ClassVar[ResponseStatus]
    SYSTEM_ERROR: _ClassVar[ResponseStatus]
OKAY: ResponseStatus
INVALID_REQUEST: ResponseStatus
APP_ERROR: ResponseStatus
SYSTEM_ERROR: ResponseStatus

class InvocationRequest(_message.Message):
    __slots__ = ("partition_id", "cls_id", "fn_id", "options", "payload")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    CLS_ID_FIELD_NUMBER: _ClassVar[int]
    FN_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    partition_id: int
    cls_id: str
    fn_id: str
    options: _containers.ScalarMap[str, str]
    payload: bytes
    def __init__(self, partition_id: _Optional[int] = ..., cls_id: _Optional[str] = ..., fn_id: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class ObjectInvocationRequest(_message.Message):
    __slots__ = ("partition_id", "object_id", "cls_id", "fn_id", "options", "payload")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CLS_ID_FIELD_NUMBER: _ClassVar[int]
    FN_ID_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    partition_id: int
    object_id: int
    cls_id: str
    fn_id: str
    options: _containers.ScalarMap[str, str]
    payload: bytes
    def __init__(self, partition_id: _Optional[int] = ..., object_id: _Optional[int] = ..., cls_id: _Optional[str] = ..., fn_id: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class InvocationResponse(_message.Message):
    __slots__ = ("payload", "status", "headers", "invocation_id")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    status: ResponseStatus
    headers: _containers.ScalarMap[str, str]
    invocation_id: str
    def __init__(self, payload: _Optional[bytes] = ..., status: _Optional[_Union[ResponseStatus, str]] = ..., headers: _Optional[_Mapping[str, str]] = ..., invocation_id: _Optional[str] = ...) -> None: ...
