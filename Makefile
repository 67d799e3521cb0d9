# README's two commands: `make repro` (set-up + the whole DAG) and `make test`.
VENV := $(CURDIR)/.venv/bin
export PATH := $(VENV):$(PATH)

.PHONY: setup repro test lint
setup:
	@bash scripts/setup.sh

repro: setup
	dvc repro

test: setup
	pytest -q

lint: setup
	ruff check . && ruff format --check .
