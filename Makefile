# xray-operator: every target installs what it needs through `make setup`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest

.PHONY: help setup lint typecheck test test-unit test-integration k8s-bins cluster-up cluster-down \
        demo demo-down bench e2e-kind manifests clean

help:
	@echo "make setup         create .venv and install the package with its dev tools"
	@echo "make demo          run the operator on a local cluster with the sample apps"
	@echo "make test          unit + integration + end-to-end tests"
	@echo "make lint          ruff and import-linter"
	@echo "make typecheck     mypy --strict"
	@echo "make k8s-bins      build or find the pinned control-plane binaries (.cache/bin)"
	@echo "make cluster-up    start the local control plane (.cache/cluster/kubeconfig)"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make bench         run the benchmarks (bench/results/latest.json)"
	@echo "make e2e-kind      the kind suite (skips where Docker is missing)"

setup: $(STAMP)

# uv resolves and installs boto3 and friends in seconds where pip takes minutes; the lock file
# pins every package so a fresh machine gets the same set.
$(STAMP): pyproject.toml requirements.lock
	@echo "==> setup: creating $(VENV) and installing from requirements.lock"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock
	@$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $@
	@echo "==> setup: done ($(VENV)/bin/xray-operator)"

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	@test -x $(VENV)/bin/uv || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet "uv==$(UV_VERSION)"; }
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --extra dev -o requirements.lock pyproject.toml

lint: setup
	$(VENV)/bin/ruff check operator tests bench sample-apps
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy

k8s-bins:
	@bash scripts/k8s-bins.sh

cluster-up: setup k8s-bins
	@PYTHONPATH=devtools $(PY) -m xray_dev.cluster up

cluster-down: setup
	@PYTHONPATH=devtools $(PY) -m xray_dev.cluster down

test: setup k8s-bins
	@bash scripts/test.sh

test-unit: setup
	$(PYTEST) tests/unit

test-integration: setup k8s-bins
	$(PYTEST) tests/integration

# Benchmarks against the floor a plain client sets on the same API server (BENCHMARKS.md).
# Uses the local cluster (XRAY_DEV_CLUSTER_DIR, default .cache/cluster); stops it afterwards
# only if it started it.
bench: setup k8s-bins
	@PYTHONPATH=devtools:. $(PY) -m bench

# The operator's main job on a local cluster, step by step; leaves it running (make demo-down).
demo: setup k8s-bins
	@PYTHONPATH=devtools $(PY) -m xray_dev.demo up

demo-down: setup
	@PYTHONPATH=devtools $(PY) -m xray_dev.demo down

# The kind suite: a real cluster from kind, with the images built and loaded. Skips, saying why,
# where no Docker engine answers (kind runs its nodes as containers).
e2e-kind: setup k8s-bins
	$(PYTEST) tests/e2e_kind -v -rs

# Regenerate manifests/install.yaml from manifests/base/ and crds/.
manifests:
	$(PY) scripts/gen-install.py

clean:
	rm -rf $(VENV) .cache/cluster
