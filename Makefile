# The two set-up commands of the README. Both install what they need on a fresh Debian machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest install system-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# etcd (Debian's etcd-server) for the real-etcd tests; installed only when missing.
system-deps:
	@command -v etcd >/dev/null 2>&1 || { \
	  echo "installing Debian's etcd-server (needed by the etcd tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null; }
	@command -v dbus-daemon >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dbus-daemon >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict src/

pytest: $(STAMP) system-deps
	$(VENV)/bin/pytest -q

test: system-deps $(STAMP) lint typecheck pytest

demo: $(STAMP)
	$(VENV)/bin/stagger demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
