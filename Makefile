# busgw: `make run` serves the demo fleet and its central, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SOURCES := $(shell find busd twisted -name '*.py') setup.cfg pyproject.toml
TRIAL  := $(PY) -Wall -b -m twisted.trial --random=0

.PHONY: run test check clean

# A regular (not editable) install, so twistd finds twisted/plugins/busgw.py
# in site-packages; re-run whenever a source file changes.
$(VENV)/.installed: $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[test]'
	touch $@

# The demo fleet: three simulated buses and their central (dashboard on
# :8000); keys, outboxes and the fleet file go to .state/ (gitignored).
# The single bus demo of before: busgw demo -c etc/busgw.json
run: $(VENV)/.installed
	BUSGW_STATE_DIR=.state $(VENV)/bin/busgw demo --buses 3

test: $(VENV)/.installed
	$(PY) -m mypy busd
	$(TRIAL) tests

check: $(VENV)/.installed
	$(VENV)/bin/busgw check -c etc/busgw.json

clean:
	rm -rf $(VENV) build dist *.egg-info _trial_temp

# Benchmark (bench/README.md): busgw against nginx and Caddy in one run,
# one table; not part of `make test`. bench-tools installs wrk, hey, nginx
# and caddy from Debian and py-spy/orjson into the venv.
.PHONY: bench bench-tools bench-profile

bench-tools: $(VENV)/.installed
	bench/setup $(PY)

bench: bench-tools
	$(PY) bench/bench.py

bench-profile: bench-tools
	$(PY) bench/profile.py S2

# Packaging (packaging/README.md, debian/README.md): self-contained zipapps
# and .debs for amd64, arm64 and armhf, built on x86_64 without emulation.
PKG_VENV := build/pkg/venv
PKG_PIP  := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null $(PKG_VENV)/bin/python -m pip

.PHONY: zipapp deb packaging-smoke packaging-lock

$(PKG_VENV)/.installed: packaging/build-tools.lock
	rm -rf $(PKG_VENV)
	$(PYTHON) -m venv $(PKG_VENV)
	$(PKG_PIP) install -q --no-deps --require-hashes -r packaging/build-tools.lock
	touch $@

zipapp: $(PKG_VENV)/.installed
	$(PKG_VENV)/bin/python packaging/build-zipapp

deb: zipapp
	packaging/build-deb

packaging-smoke:
	packaging/smoke

packaging-lock: $(PKG_VENV)/.installed
	$(PKG_VENV)/bin/python packaging/lock
