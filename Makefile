# Two entry points: `make demo` and `make test`. Each does its own set-up and skips what is done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GOVMOMI_SRC := /usr/share/gocode/src/github.com/vmware/govmomi/simulator
VENV_STAMP := $(VENV)/.installed

.PHONY: demo test setup system-deps venv vcsim lint typecheck pytest clean

demo: setup
	@echo "==> Running a whole failback in the lab (failback demo)"
	$(BIN)/failback demo

test: setup
	@echo "==> ruff lint"
	$(BIN)/ruff check .
	@echo "==> ruff format check"
	$(BIN)/ruff format --check .
	@echo "==> mypy"
	$(BIN)/mypy
	@echo "==> pytest (two processes: most tests wait on the lab's processes, not on a core; a file's tests stay together)"
	$(BIN)/pytest -q -n 2 --dist loadfile

setup: system-deps venv vcsim

system-deps:
	@if command -v go >/dev/null 2>&1 && [ -d "$(GOVMOMI_SRC)" ] && command -v docker-compose >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 && PATH="$$PATH:/usr/sbin" command -v haproxy >/dev/null 2>&1; then \
		echo "==> Go, the govmomi source, docker-compose, chromium and haproxy are installed"; \
	else \
		echo "==> Installing Debian packages golang-go and golang-github-vmware-govmomi-dev (for vcsim), docker-compose (to validate docker-compose.yml), chromium (to test the Web UI) and haproxy (the mutual-TLS proxy in front of Temporal)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq golang-go golang-github-vmware-govmomi-dev docker-compose chromium haproxy >/dev/null; \
	fi

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	@echo "==> Creating the virtual environment $(VENV) with the project, the lab and the test tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[lab,test]'
	@touch $@

vcsim: venv
	@echo "==> Building the vcsim harness (skipped when up to date)"
	$(BIN)/failback lab build

clean:
	rm -rf $(VENV) .lab
