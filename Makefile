# vexpipe: `make demo` and `make test` work on a fresh clone with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The benchmark's peers (ioc-finder) live in their own venv, away from ours.
BENCH_VENV := bench/.venv-peers

.PHONY: demo test man bench attack-table clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest -q

man: $(STAMP)
	$(BIN)/python man/build.py

# Rebuild the ATT&CK table from MITRE's official STIX bundle: make attack-table BUNDLE=enterprise-attack.json
attack-table: $(STAMP)
	@test -n "$(BUNDLE)" || { echo "usage: make attack-table BUNDLE=path/to/enterprise-attack.json"; exit 64; }
	$(BIN)/python -m vexpipe.attack_table "$(BUNDLE)" > vexpipe/data/attack-enterprise.json.new
	mv vexpipe/data/attack-enterprise.json.new vexpipe/data/attack-enterprise.json

$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check ioc-finder
	touch $@

bench: $(STAMP) $(BENCH_VENV)/.installed
	$(BIN)/python bench/run.py --peers $(BENCH_VENV)/bin/python

clean:
	rm -rf $(VENV) $(BENCH_VENV) bench/.data .pytest_cache .hypothesis
