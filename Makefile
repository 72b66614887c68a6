# nitrosync: build, test and run everything from a fresh clone.
#
#   make sim         run the whole system locally (AWS simulator, enclave, parent) and stay up
#   make test        install what is needed, build, and run every test
#
# Other targets: setup, build, sim-check, lint, fuzz-smoke, bench, clean. `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := socat pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev xmlsec1
FUZZ_SECONDS ?= 20
export CARGO_TERM_COLOR ?= never

.PHONY: help setup setup-apt setup-venv setup-fuzz build build-release test test-rust test-python \
        sim sim-check lint fuzz-smoke bench clean

help:
	@echo "make sim         run the whole system locally and show a real call through the relay"
	@echo "make test        install what is needed, build, run every test (what CI runs)"
	@echo "make sim-check   the sim, without a terminal; exits with the result"
	@echo "make lint        cargo fmt --check and clippy with warnings denied"
	@echo "make fuzz-smoke  build the fuzz targets and run each for FUZZ_SECONDS (default 20)"
	@echo "make bench       relay throughput and latency against socat, in one run"
	@echo "make setup       Debian packages, the Python virtualenv (idempotent)"

## setup: Debian packages (only the missing ones) and the virtualenv under the repo.
setup: setup-apt setup-venv

setup-apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

setup-venv: $(VENV)/.installed

$(VENV)/.installed: tests/aws-sim/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/aws-sim/requirements.txt
	touch $@

setup-fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz

## build: every binary of the workspace (the end-to-end tests run them).
build:
	$(CARGO) build --workspace --bins

build-release:
	$(CARGO) build --release --workspace --bins

## test: everything CI checks.
test: setup build test-python test-rust sim-check

test-rust: build
	NITROSYNC_REQUIRE_LINTERS=1 $(CARGO) test --workspace

test-python: setup-venv
	$(PY) -m pytest tests/aws-sim -q

sim: setup build
	target/debug/nitrosync-sim --run-dir run

sim-check: setup build
	target/debug/nitrosync-sim --run-dir run --check

lint: setup-apt
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p nitrosync-attestation --all-targets --features nsm -- -D warnings

## fuzz-smoke: cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
fuzz-smoke: setup-fuzz
	for t in frame_stream control_messages attestation_doc bundle_open; do \
	  mkdir -p fuzz/corpus/$$t; seeds=""; [ -d fuzz/seeds/$$t ] && seeds=fuzz/seeds/$$t; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t fuzz/corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 2>&1 | tail -n 2; \
	done

bench: setup build-release
	$(CARGO) bench -p nitrosync-tests --bench relay
	$(CARGO) bench -p nitrosync-tests --bench sync
	$(CARGO) bench -p nitrosync-tests --bench daemon
	$(CARGO) bench -p nitrosync-tests --bench flood
	$(CARGO) bench -p nitrosync-parent --bench store_submit
	$(CARGO) bench -p nitrosync-attestation --bench verify
	$(CARGO) bench -p nitrosync-bundle --bench bundle
	$(CARGO) bench -p nitrosync-saml --bench sign

clean:
	$(CARGO) clean
	rm -rf run fuzz/target
