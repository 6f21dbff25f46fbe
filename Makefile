# The two commands of the README: `make train` and `make test`. Each creates .venv in the checkout
# and installs what it needs. torch==2.13.0 goes in first: on machines that keep its CPU wheel on
# disk pip takes that file instead of downloading a CUDA build of several GB.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: train test clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[dev,suites]"
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/rl-lstm train

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -n 2

clean:
	rm -rf $(VENV) runs
