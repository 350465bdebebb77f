# busgw: `make run` serves the built-in demo bus, `make test` runs the tests.
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

run: $(VENV)/.installed
	$(VENV)/bin/busgw demo -c etc/busgw.json

test: $(VENV)/.installed
	$(PY) -m mypy busd
	$(TRIAL) tests

check: $(VENV)/.installed
	$(VENV)/bin/busgw check -c etc/busgw.json

clean:
	rm -rf $(VENV) build dist *.egg-info _trial_temp
