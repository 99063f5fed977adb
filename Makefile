# Two commands: `make demo` and `make test`. Both set up everything they need.
SHELL := /bin/bash
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo bench lint typecheck install clean chromium lock deb pi-check

$(STAMP): pyproject.toml Makefile
	@test -n "$(PYTHON)" || { echo "make: error: Python 3.11 or newer is required" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# mfrc522 pins RPi.GPIO, which conflicts with rpi-lgpio: never take its deps.
	$(BIN)/python -m pip install -q --no-deps 'mfrc522==0.0.7'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check agent portal tests bench demo
	$(BIN)/ruff format --check agent portal tests bench demo
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

# The auditor pages are tested in Debian's Chromium; install it when we can
# (root with apt), otherwise those tests skip and say why.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make: installing Debian's chromium for the page tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "make: warning: could not install chromium; page tests will skip"; \
	fi

test: $(STAMP) lint typecheck chromium
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m demo

# Pinned versions with hashes for installs (scripts/install.sh uses them).
# uv resolves for every platform at once (--universal), so the Pi's wheels are in.
lock: $(STAMP)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --universal \
		--python-version 3.11 -o requirements/agent.lock
	$(BIN)/uv pip compile pyproject.toml --extra pi --generate-hashes --universal \
		--python-version 3.11 -o requirements/agent-pi.lock
	$(BIN)/uv pip compile pyproject.toml --extra portal --generate-hashes --universal \
		--python-version 3.11 -o requirements/portal.lock

# The Debian package dist/qatysu-agent_<version>_all.deb (dpkg-deb, no debhelper):
# packaging/build-deb.sh, docs/decisions/0942.
deb: $(STAMP)
	PYTHON=$(BIN)/python packaging/build-deb.sh --out dist

# Install that package with apt into an emulated arm64 Debian 12 (qemu-user-static
# + debootstrap, cached under ~/.cache/qatysu-pi-check) and run the agent there.
# Minutes, needs root: not part of `make test`. packaging/pi-check.sh.
pi-check: deb
	packaging/pi-check.sh dist/qatysu-agent_$$($(BIN)/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')_all.deb

bench: $(STAMP)
	$(BIN)/python -m bench.all

clean:
	rm -rf dist $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
