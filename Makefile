# Engage: `make demo` serves a demo, `make test` runs the whole suite. Both make .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
HOST_PAGE_PORT ?= 8001

.PHONY: install demo test lint format serve clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo --host $(DEMO_HOST) --port $(DEMO_PORT) --host-page-port $(HOST_PAGE_PORT)

serve: install
	$(PY) manage.py migrate --no-input
	$(VENV)/bin/daphne -b $(DEMO_HOST) -p $(DEMO_PORT) engage.asgi:application

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) engage.sqlite3 staticfiles
