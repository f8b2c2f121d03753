# bookops developer targets. `make demo` and `make test` each install what they need first.
#
# setup is idempotent: on a fresh Debian/Ubuntu with only Python 3.11 it installs the OCR tools
# (as root, or through sudo) when they are missing, creates .venv and installs bookops into it.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= $(shell command -v python3.11 || command -v python3)
SAMPLE := samples/sample-book.pdf
# The demo keeps its store and page images here, away from the user's own ~/.bookops.
DEMO_HOME ?= $(CURDIR)/.bookops-demo
DEMO_ENV := env -u BOOKOPS_MONGO_URI -u BOOKOPS_CONFIG BOOKOPS_HOME="$(DEMO_HOME)"

.PHONY: setup system-packages demo test lint clean-demo

setup: system-packages $(VENV)/.installed

# Checks for the tools rather than the packages, so a system that has them some other way
# (Homebrew, a source build) is left alone; apt-get runs only when something is missing.
# Debian's own python3 lacks ensurepip until python3-venv is installed.
system-packages:
	@missing=""; \
	command -v tesseract >/dev/null || missing="$$missing tesseract-ocr"; \
	{ command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -x eng >/dev/null; } \
	  || missing="$$missing tesseract-ocr-eng"; \
	command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then \
	    echo "install these (Debian package names) first:$$missing" >&2; exit 1; \
	  fi; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  echo "installing$$missing"; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Reinstalled when pyproject.toml changes; the stamp file makes repeated runs a no-op.
$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.11 or python3 is needed" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $@

demo: setup
	$(DEMO_ENV) $(BIN)/bookops job process-pages $(SAMPLE)
	id=$$($(DEMO_ENV) $(BIN)/bookops book add $(SAMPLE) 2>/dev/null); \
	$(DEMO_ENV) $(BIN)/bookops book show "$$id"

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/mypy

clean-demo:
	rm -rf "$(DEMO_HOME)"

# The long reliability runs (crash harness, provider fault storm, scale bench): about an hour on
# 2 cores. Each writes its figures to reliability/results/<name>.json; see RELIABILITY.md.
.PHONY: reliability
reliability: setup
	@rc=0; \
	$(BIN)/python -m reliability.crash --kills 10 || rc=1; \
	$(BIN)/python -m reliability.faults || rc=1; \
	$(BIN)/python -m reliability.scale || rc=1; \
	exit $$rc
