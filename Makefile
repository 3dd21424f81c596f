# Shortcuts; the README's two commands need only Python (python3 dev.py up / test).
.PHONY: up test lint format ci

up:
	python3 dev.py up

test:
	python3 dev.py test

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

ci:
	bash .ci/run
