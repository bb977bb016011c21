# The two set-up commands of the README. Both install what they need on a fresh Debian machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest install system-deps clean docs-figures man

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Real parts the tests start: etcd (Debian's etcd-server), dbus-daemon, and Chromium for the
# dashboard's browser tests (driven by Playwright with executable_path=/usr/bin/chromium).
# Each is installed only when missing.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
system-deps:
	@missing=""; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server etcd-client"; \
	command -v dbus-daemon >/dev/null 2>&1 || missing="$$missing dbus-daemon"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages the tests use:$$missing"; \
	  apt-get update -qq && $(APT_INSTALL) $$missing >/dev/null; \
	fi

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

# The stagger(1) manual page, made from the CLI itself (the Debian package runs the same module).
man: $(STAMP)
	$(PY) -m stagger.cli.manpage build/man

# docs/simulate.md's outputs and picture, made again by running the commands it shows.
docs-figures: $(STAMP)
	$(PY) docs/figures.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

.PHONY: deb deb-deps e2e e2e-deps

# The Debian package, dist/stagger_<version>_<arch>.deb: a self-contained venv on Debian 12's
# /usr/bin/python3 (packaging/debian/build-deb.sh; needs PyPI). lintian checks it in `make e2e`.
deb: deb-deps
	packaging/debian/build-deb.sh

deb-deps:
	@missing=""; \
	test -x /usr/bin/python3 || missing="$$missing python3"; \
	/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v dpkg-deb >/dev/null 2>&1 || missing="$$missing dpkg-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages the package build uses:$$missing"; \
	  apt-get update -qq && $(APT_INSTALL) $$missing >/dev/null; \
	fi

# stagger on real systemd machines: systemd-nspawn containers of a cached Debian 12 root with
# the package installed, rebooted for real (tests/e2e/run.py; docs/install.md). Needs root.
e2e: $(STAMP) system-deps e2e-deps deb
	$(PY) tests/e2e/run.py

e2e-deps:
	@missing=""; \
	command -v systemd-nspawn >/dev/null 2>&1 || missing="$$missing systemd-container"; \
	command -v mmdebstrap >/dev/null 2>&1 || missing="$$missing mmdebstrap"; \
	command -v lintian >/dev/null 2>&1 || missing="$$missing lintian"; \
	command -v nsenter >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages the e2e suite uses:$$missing"; \
	  apt-get update -qq && $(APT_INSTALL) $$missing >/dev/null; \
	fi
