"""A class given to --serve-objects / objects --serve (or their environment variable) is
checked before anything starts, and the error names where it came from."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from oprc_redis_events.cli.main import main

pytestmark = pytest.mark.quick  # fails before any connection: no server


@pytest.mark.parametrize(
    ("args", "named"),
    [(["worker", "--serve-objects", "**"], "Invalid value for '--serve-objects'"),
     (["objects", "--serve", "a/b"], "Invalid value for '--serve'"),
     (["worker", "--serve-objects", "ok,c\x1b[31m"], "Invalid value for '--serve-objects'")],
)  # fmt: skip
def test_a_bad_class_option_names_the_option(args: list[str], named: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and named in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "code", "named"),
    [("worker", 1, "Error: OPRC_EVENTS_SERVE_OBJECTS: cls_id 'x/y' contains '/'"),
     ("objects", 2, "Error: Invalid value for '--serve': cls_id 'x/y' contains '/'")],
)  # fmt: skip
def test_a_bad_class_from_the_environment_is_refused_before_starting(
    command: str, code: int, named: str
) -> None:
    result = CliRunner().invoke(main, [command], env={"OPRC_EVENTS_SERVE_OBJECTS": "x/y"})
    assert result.exit_code == code and named in result.output, result.output
    assert "worker started" not in result.output
