# nitrosync: build, test and run everything from a fresh clone.
#
#   make sim         run the whole system locally (AWS simulator, enclave, parent) and stay up
#   make test        install what is needed, build, and run every test
#
# Other targets: setup, build, sim-check, lint, fuzz-smoke, fuzz-smoke-enclave, bench, eif, eif-verify, clean.
# `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The Rust build links no C library but libc (SAML signing is pure Rust). libxml2-dev and
# libxmlsec1-dev build the Python xmlsec binding of the SAML oracles (signxml, python3-saml);
# xmlsec1 and openssl are test oracles; libssl-dev builds eif_build.
APT_PACKAGES := socat pkg-config libssl-dev libxml2-dev libxmlsec1-dev xmlsec1 openssl
FUZZ_SECONDS ?= 20
export CARGO_TERM_COLOR ?= never

.PHONY: help setup setup-apt setup-venv setup-fuzz build build-release test test-rust test-python \
        sim sim-check lint fuzz-smoke fuzz-smoke-enclave bench clean setup-apt-eif eif eif-verify

help:
	@echo "make sim         run the whole system locally and show a real call through the relay"
	@echo "make test        install what is needed, build, run every test (what CI runs)"
	@echo "make sim-check   the sim, without a terminal; exits with the result"
	@echo "make lint        cargo fmt --check and clippy with warnings denied"
	@echo "make fuzz-smoke  build the fuzz targets and run each for FUZZ_SECONDS (default 20)"
	@echo "make fuzz-smoke-enclave  the same for the sealed identity's parsers (slow to build; not in CI)"
	@echo "make bench       relay throughput and latency against socat, in one run"
	@echo "make eif         the enclave image out/eif/nitrosync-enclave.eif and its measurements.json"
	@echo "make eif-verify  build the image twice in fresh clones of HEAD; the PCRs must agree (CI)"
	@echo "make setup       Debian packages, the Python virtualenv (idempotent)"

## setup: Debian packages (only the missing ones) and the virtualenv under the repo.
setup: setup-apt setup-venv

setup-apt:
	@$(call apt-install,$(APT_PACKAGES))

# apt-install: install the Debian packages of $(1) that are missing (sudo unless root).
define apt-install
	missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

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

## fuzz-smoke-enclave: the sealed identity's parsers (fuzz-enclave/); not in CI: building the
## enclave crate under ASAN takes about 20 minutes from cold on 2 cores.
fuzz-smoke-enclave: setup-fuzz
	for t in recipient_open key_policy identity_unseal sealed_identity; do \
	  mkdir -p fuzz-enclave/corpus/$$t; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --fuzz-dir fuzz-enclave $$t fuzz-enclave/corpus/$$t fuzz-enclave/seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 2>&1 | tail -n 2; \
	done

bench: setup build-release
	$(CARGO) bench -p nitrosync-tests --bench relay
	$(CARGO) bench -p nitrosync-tests --bench sync
	$(CARGO) bench -p nitrosync-tests --bench daemon
	$(CARGO) bench -p nitrosync-tests --bench flood
	$(CARGO) bench -p nitrosync-tests --bench identity
	$(CARGO) bench -p nitrosync-parent --bench store_submit
	$(CARGO) bench -p nitrosync-attestation --bench verify
	$(CARGO) bench -p nitrosync-bundle --bench bundle
	$(CARGO) bench -p nitrosync-saml --bench sign

## The enclave image: see README, "The enclave image", and eif/*.sh.
# Every input is pinned here or in Cargo.lock: the kernel source package (version and the
# .deb's SHA-256), the config fragment eif/kernel.config, the command line, the eif_build
# version, and one timestamp for everything that records a time.
EIF_KERNEL_PKG := linux-source-6.12
EIF_KERNEL_PKG_VERSION := 6.12.118-1~deb12u1
EIF_KERNEL_PKG_SHA256 := 896aff3b39299fa0dd36fef4f5db56ab189182e39abbbb1227dafdc7fcfe3fc3
EIF_SOURCE_DATE_EPOCH := 1704067200
# nitro-cli's x86_64 command line without what this kernel lacks (pci=off, nomodules and the
# i8042 options: the kernel hands unknown parameters to /init). No virtio_mmio.device= here:
# like Firecracker, the hypervisor appends one per device it gives the enclave.
EIF_CMDLINE := reboot=k panic=30 console=ttyS0 random.trust_cpu=on
EIF_BUILD_VERSION := 0.2.1
EIF_APT_PACKAGES := bc bison flex libelf-dev cpio xz-utils gzip binutils gcc libc6-dev make git
# Caches (git-ignored). EIF_KERNEL_CACHE= (empty) builds the kernel without the cache.
EIF_TOOLS ?= $(CURDIR)/.cache/tools
EIF_BUILD ?= $(EIF_TOOLS)/eif_build-$(EIF_BUILD_VERSION)/bin/eif_build
EIF_KERNEL_CACHE ?= $(CURDIR)/.cache/eif/kernel
EIF_DOWNLOAD_DIR ?= $(CURDIR)/.cache/eif/downloads
EIF_WORK_DIR ?= $(CURDIR)/.cache/eif/work
EIF_TARGET_DIR ?= $(CURDIR)/target/eif
EIF_OUT ?= $(CURDIR)/out/eif
EIF_ATTEST ?= $(CURDIR)/target/debug/nitrosync-attest

setup-apt-eif:
	@$(call apt-install,$(EIF_APT_PACKAGES))

$(EIF_BUILD):
	env -u RUSTFLAGS $(CARGO) install --locked --version $(EIF_BUILD_VERSION) \
	  --root $(EIF_TOOLS)/eif_build-$(EIF_BUILD_VERSION) eif_build

## eif: out/eif/nitrosync-enclave.eif and measurements.json (kernel cached by its inputs).
eif: setup-apt setup-apt-eif $(EIF_BUILD)
	EIF_KERNEL_PKG='$(EIF_KERNEL_PKG)' EIF_KERNEL_PKG_VERSION='$(EIF_KERNEL_PKG_VERSION)' \
	EIF_KERNEL_PKG_SHA256='$(EIF_KERNEL_PKG_SHA256)' SOURCE_DATE_EPOCH='$(EIF_SOURCE_DATE_EPOCH)' \
	EIF_CMDLINE='$(EIF_CMDLINE)' EIF_BUILD='$(EIF_BUILD)' EIF_BUILD_VERSION='eif_build $(EIF_BUILD_VERSION)' \
	EIF_KERNEL_CACHE='$(EIF_KERNEL_CACHE)' EIF_DOWNLOAD_DIR='$(EIF_DOWNLOAD_DIR)' \
	EIF_WORK_DIR='$(EIF_WORK_DIR)' EIF_TARGET_DIR='$(EIF_TARGET_DIR)' EIF_OUT='$(EIF_OUT)' \
	EIF_ATTEST='$(EIF_ATTEST)' CARGO='$(CARGO)' eif/build.sh

## eif-verify: two builds from fresh clones of HEAD must give the same PCR0/1/2 and EIF.
# Uncommitted changes are not in the clones (EIF_VERIFY_FROM=worktree copies the working
# tree instead). Uses target/debug/nitrosync-attest, if built, to cross-check the PCRs.
eif-verify: setup-apt setup-apt-eif $(EIF_BUILD)
	EIF_TOOLS='$(EIF_TOOLS)' MAKE='$(MAKE)' eif/verify.sh

clean:
	$(CARGO) clean
	rm -rf run fuzz/target fuzz-enclave/target
