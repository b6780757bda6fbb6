# Atelier — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')
GEN := gen/python
# Every dependency version is pinned in constraints.txt (`make lock` regenerates it). As a pip
# constraints file it pins whatever an install asks for — runtime, dev extras, pip's isolated build
# of the project — and adds nothing by itself.
CONSTRAINTS := $(CURDIR)/constraints.txt
PIP_INSTALL := PIP_CONSTRAINT=$(CONSTRAINTS) $(PY) -m pip install --quiet
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: install install-runtime protos lock lint typecheck layers pytest test test-unit run run-billing bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# `make run` needs only the runtime dependencies ...
$(RUNTIME): $(PY) pyproject.toml constraints.txt
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e .
	touch $@

# ... `make test` adds the dev extras to the same .venv (after `make run` too).
$(DEV): $(RUNTIME)
	$(PIP_INSTALL) -e '.[dev]'
	touch $@

install-runtime: $(RUNTIME) protos

# The developer setup: runtime + dev extras + generated code.
install: $(DEV) protos

# Re-resolve every dependency from pyproject.toml to today's newest allowed versions and pin them
# (pip itself too: the newest, unconstrained, does the resolving).
lock: $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) deploy/lock.py

# Generated code lives in gen/python (git-ignored) and is importable as atelier.<service>.v1.
protos: $(RUNTIME) $(GEN)/.stamp

# Typed: .pyi for the messages (--pyi_out) and for the service stubs (mypy-protobuf's
# protoc-gen-mypy_grpc), so mypy checks every use of generated code.
$(GEN)/.stamp: $(PROTOS) Makefile
	rm -rf $(GEN)/atelier
	mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -I protos --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc \
	  --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) --mypy_grpc_out=$(GEN) $(PROTOS)
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy strict over the code and the tests (fakes, harnesses, support servers): a Fake* that drifts
# from its port fails the build. One line per area.
TYPECHECK := libs/ports/atelier_ports libs/common/atelier_common
TYPECHECK += services/billing/atelier_billing services/tasks/atelier_tasks services/gateway/atelier_gateway
TYPECHECK += tests/support tests/common tests/contracts tests/project tests/conftest.py bench
TYPECHECK += tests/billing
TYPECHECK += tests/gateway
TYPECHECK += tests/tasks

typecheck: install
	$(VENV)/bin/mypy $(TYPECHECK)

layers: install
	$(VENV)/bin/lint-imports

pytest: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The unit layer only (tests/<area>/unit: domain and use cases on fakes; no database, no network,
# no subprocess): seconds. `make test` runs every layer, each test once.
test-unit: install
	$(VENV)/bin/pytest -q $(wildcard tests/*/unit) $(PYTEST_ARGS)

test: lint typecheck layers pytest

run-billing: install-runtime
	$(VENV)/bin/atelier-billing migrate
	$(VENV)/bin/atelier-billing serve

# The whole product (billing, tasks, gateway) on the embedded default; Ctrl-C stops all three.
run: install-runtime
	$(PY) -m atelier_gateway.devstack

# Every figure of issue 15 in one run on PostgreSQL, against ceilings outside our code (pgbench,
# a bare aiohttp handler) under wrk; a table with the targets, and bench/results.json. Not a test:
# `make test` never runs it (its parsers are unit-tested in tests/project/unit).
bench: install
	$(PY) -m bench

clean:
	rm -rf $(GEN) $(VENV) var
