"""Conditions on a trigger target: ``req_options["oprc.when"]``, a CEL expression.

A target with a condition fires only when the expression is true for the event.  The
expression sees these variables (:func:`variables`):

==============  =====================================================================
``old``         the field's previous value as a UTF-8 string; ``null`` when absent
``new``         its new value (a function event: the output); ``null`` when absent
``old_bytes``   ``old`` as bytes (``null`` when absent)
``new_bytes``   ``new`` as bytes (``null`` when absent)
``event``       ``"create"``, ``"update"``, ``"delete"``, ``"complete"``, ``"error"``
``key``         the field key (as spelled in the hash) or the function id
``object_id``   the source object's id, as a string
``cls``         the source class
``partition``   the source partition (int)
``depth``       the depth of the write (int)
==============  =====================================================================

CEL is the library ``common-expression-language`` (Rust's ``cel`` crate behind Python
bindings).  An expression is compiled once per text (:func:`compiled`); the API refuses one
that does not compile (:func:`check_when`, called by ``triggers.check_target``).  At run time
an error (``double("abc")``, a method on ``null``) or a result that is not a boolean makes
the condition false: :func:`holds` reports it as :class:`ConditionFailed`.

A target that has a condition, or ``oprc.include_old = "true"``, needs the field's previous
value: :func:`needs_old` decides which index entries ask the write script for it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the package imports its CLI (prompt_toolkit): a quarter second, on use only
    import cel

__all__ = [
    "INCLUDE_OLD_OPTION",
    "WHEN_OPTION",
    "ConditionFailed",
    "check_options",
    "check_when",
    "compiled",
    "holds",
    "includes_old",
    "needs_old",
    "variables",
]

WHEN_OPTION = "oprc.when"
INCLUDE_OLD_OPTION = "oprc.include_old"
#: the longest expression accepted (a condition lives in every index value of its key)
MAX_WHEN_CHARS = 4096

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")
# the names that CEL's macros bind (``list.exists(x, x > 1)``): they are not variables of
# the event (a match inside a string literal only accepts more; the trial runs of
# _unknown_names catch one read outside its macro)
_BOUND = re.compile(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")
_WORDS = {3: "create", 4: "update", 5: "delete", 1: "complete", 2: "error"}


class ConditionFailed(Exception):
    """Evaluating a condition raised or gave no boolean: the condition is false."""


#: the variables a condition can see (:func:`variables`)
NAMES = frozenset(
    {
        "old",
        "new",
        "old_bytes",
        "new_bytes",
        "event",
        "key",
        "object_id",
        "cls",
        "partition",
        "depth",
    }
)


@functools.lru_cache(maxsize=4096)
def compiled(expression: str) -> tuple[cel.Program, tuple[str, ...]]:
    """The compiled program of ``expression`` (cached by text) and the variables it reads
    (only those are handed to it: converting the ten of them costs more than most
    evaluations); raises ``ValueError`` (:func:`check_when` words it) when it does not
    compile."""
    import cel

    program = cel.compile(expression)
    return program, tuple(n for n in program.variables() if n in NAMES)


def check_when(expression: str) -> None:
    """Raise ``ValueError`` naming ``oprc.when`` and the position when ``expression`` does
    not compile (line and column, 1-based, as CEL reports them)."""
    if len(expression) > MAX_WHEN_CHARS:
        raise ValueError(
            f"req_options {WHEN_OPTION} is {len(expression)} characters, more than {MAX_WHEN_CHARS}"
        )
    if not expression.strip():
        raise ValueError(f"req_options {WHEN_OPTION} is empty: give a CEL expression")
    try:
        compiled(expression)
    except (ValueError, RuntimeError) as err:
        found = _POSITION.search(str(err))
        if found is None:
            raise ValueError(f"req_options {WHEN_OPTION} does not compile: {err}") from None
        line, column, what = found.groups()
        raise ValueError(
            f"req_options {WHEN_OPTION} {expression!r} does not compile at line {line}, "
            f"column {column}: {what}"
        ) from None
    unknown = _unknown_names(expression)
    if unknown:
        raise ValueError(
            f"req_options {WHEN_OPTION} {expression!r} uses unknown variable(s) or function(s) "
            f"{', '.join(unknown)}; a condition sees {', '.join(sorted(NAMES))}"
        )


#: CEL's type names (``type(new) == string``), which the expression reads as identifiers
TYPE_NAMES = frozenset(
    {"bool", "int", "uint", "double", "string", "bytes", "list", "map", "null_type", "type"}
)
#: values a trial run gives the variables: text, then nulls (an error on one side of ``&&``
#: can hide the other side's, so both are tried)
_TRIALS = (
    {**dict.fromkeys(("old", "new", "key", "object_id", "cls"), "0"), "event": "update"},
    {**dict.fromkeys(("old", "new", "old_bytes", "new_bytes"), None), "event": "delete"},
)
_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")


def _unknown_names(expression: str) -> list[str]:
    """The names ``expression`` reads that are neither variables of the event, type names,
    nor bound by one of CEL's macros where they are read (a typo such as ``nwe``, or a
    macro's variable read outside it, would make the condition false for every event)."""
    program = compiled(expression)[0]
    names = set(program.variables())
    unknown = names - NAMES - TYPE_NAMES - set(_BOUND.findall(expression))
    # a trial run names what it found undefined: a name read outside the macro binding it
    # (in any trial), or a function (in every trial: on a null, a real one is "undefined")
    functions: set[str] | None = None
    for trial in _TRIALS:
        values = {"old_bytes": b"0", "new_bytes": b"0", "partition": 0, "depth": 0, **trial}
        found: set[str] = set()
        try:
            program.execute(values)
        except Exception as err:  # any other error is a verdict of the run, not a typo
            found = set(_UNDEFINED.findall(str(err)))
        unknown |= (found & names) - NAMES
        functions = found - names if functions is None else functions & found
    return sorted(unknown | (functions or set()))


def check_options(when: str | None, include_old: str | None) -> None:
    """Raise ``ValueError`` naming the option when ``oprc.when`` does not compile or
    ``oprc.include_old`` is neither ``"true"`` nor ``"false"``."""
    if include_old is not None and include_old not in ("true", "false"):
        raise ValueError(
            f"req_options {INCLUDE_OLD_OPTION}={include_old!r} is neither 'true' nor 'false'"
        )
    if when is not None:
        check_when(when)


def includes_old(options: Mapping[str, str]) -> bool:
    """Whether a target asks for the previous value in its payload."""
    return options.get(INCLUDE_OLD_OPTION) == "true"


def needs_old(options: Mapping[str, str]) -> bool:
    """Whether a target needs the field's previous value (a condition or include_old)."""
    return WHEN_OPTION in options or includes_old(options)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def variables(
    *,
    old: bytes | None,
    new: bytes | None,
    event_type: int,
    key: str,
    object_id: str,
    cls: str,
    partition: int,
    depth: int,
) -> dict[str, object]:
    """The variables a condition sees for one event (see the module docstring)."""
    return {
        "old": _text(old),
        "new": _text(new),
        "old_bytes": old,
        "new_bytes": new,
        "event": _WORDS.get(event_type, "unknown"),
        "key": key,
        "object_id": object_id,
        "cls": cls,
        "partition": partition,
        "depth": depth,
    }


def holds(expression: str, values: Mapping[str, object]) -> bool:
    """Whether ``expression`` is true for ``values``; raises :class:`ConditionFailed`
    (with what went wrong) when it errs or gives something other than a boolean."""
    program, names = compiled(expression)
    try:
        result = program.execute({n: values[n] for n in names})
    except Exception as err:  # the library raises several types (ZeroDivisionError, ...)
        raise ConditionFailed(f"{type(err).__name__}: {err}") from None
    if not isinstance(result, bool):
        raise ConditionFailed(f"the result is {result!r}, not a boolean")
    return result
