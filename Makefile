# Atelier — the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROTOS := $(shell find protos -name '*.proto')
GEN := gen/python
STAMP := $(VENV)/.installed

.PHONY: install protos lint typecheck layers pytest test run run-billing bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) protos

# Generated code lives in gen/python (git-ignored) and is importable as atelier.<service>.v1.
protos: $(STAMP) $(GEN)/.stamp

$(GEN)/.stamp: $(PROTOS)
	rm -rf $(GEN)/atelier
	mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -I protos --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) $(PROTOS)
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy libs/ports/atelier_ports libs/common/atelier_common services/billing/atelier_billing services/tasks/atelier_tasks services/gateway/atelier_gateway

layers: install
	$(VENV)/bin/lint-imports

pytest: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck layers pytest

run-billing: install
	$(VENV)/bin/atelier-billing migrate
	$(VENV)/bin/atelier-billing serve

# The whole product (billing, tasks, gateway) on the embedded default; Ctrl-C stops all three.
run: install
	$(PY) -m atelier_gateway.devstack

# Create-task throughput over HTTP on PostgreSQL against its two ceilings; prints one JSON line.
bench: install
	$(PY) -m tests.gateway.bench_http

clean:
	rm -rf $(GEN) $(VENV) var
