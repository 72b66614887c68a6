# nitrosync: build, test and run everything from a fresh clone.
#
#   make sim         run the whole system locally (AWS simulator, enclave, parent) and stay up
#   make test        install what is needed, build, and run every test
#
# Other targets: setup, build, sim-check, lint, fuzz-smoke, fuzz-smoke-enclave, bench, eif, eif-verify,
# qemu-tools, eif-qemu, eif-boot-test, clean.
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
# The `commit` label of nitrosync_build_info (parent/src/metrics/mod.rs reads it when the parent
# is compiled): HEAD's short hash, or `unknown` outside a git checkout. Every cargo build here
# gets the same value, so `build`, `test` and `sim` do not rebuild each other's parent. The
# enclave image does not read it (no crate of the enclave does), and `eif` removes it from the
# image build's environment all the same, so the image stays reproducible from its inputs.
ifeq ($(origin NITROSYNC_GIT_COMMIT),undefined)
NITROSYNC_GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
endif
export NITROSYNC_GIT_COMMIT

.PHONY: help setup setup-apt setup-venv setup-fuzz build build-release test test-rust test-python \
        sim sim-check lint fuzz-smoke fuzz-smoke-enclave bench clean setup-apt-eif eif eif-verify \
        setup-apt-qemu qemu-tools eif-qemu eif-boot-test

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
	@echo "make qemu-tools  QEMU with the nitro-enclave machine, and vhost-device-vsock (cached)"
	@echo "make eif-boot-test  boot the image under QEMU's nitro-enclave machine; parent over real vsock"
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

# Every benchmark's output goes to $(BENCH_OUT)/bench.log; tests/bench/summary.py ends the run
# with the budget table (DESIGN §11, pass or fail) and the plot of the sync run's latencies.
BENCH_OUT ?= $(CURDIR)/target/bench
BENCH_VENV := .venv-bench
BENCH_RUN = NITROSYNC_BENCH_OUT=$(BENCH_OUT) $(CARGO) bench
bench: setup build-release $(BENCH_VENV)/.installed
	mkdir -p $(BENCH_OUT) && : > $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-tests --bench relay 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-tests --bench sync 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-tests --bench daemon 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-tests --bench flood 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-tests --bench identity 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-parent --bench store_submit 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-attestation --bench verify 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-bundle --bench bundle 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_RUN) -p nitrosync-saml --bench sign 2>&1 | tee -a $(BENCH_OUT)/bench.log
	$(BENCH_VENV)/bin/python tests/bench/summary.py $(BENCH_OUT)

$(BENCH_VENV)/.installed: tests/bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -r tests/bench/requirements.txt
	touch $@

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
	EIF_ATTEST='$(EIF_ATTEST)' CARGO='$(CARGO)' env -u NITROSYNC_GIT_COMMIT eif/build.sh

## eif-verify: two builds from fresh clones of HEAD must give the same PCR0/1/2 and EIF.
# Uncommitted changes are not in the clones (EIF_VERIFY_FROM=worktree copies the working
# tree instead). Uses target/debug/nitrosync-attest, if built, to cross-check the PCRs.
eif-verify: setup-apt setup-apt-eif $(EIF_BUILD)
	EIF_TOOLS='$(EIF_TOOLS)' MAKE='$(MAKE)' env -u NITROSYNC_GIT_COMMIT eif/verify.sh

## QEMU: the `nitro-enclave` machine boots the EIF as Nitro does (emulated NSM, virtio-vsock
## through vhost-device-vsock). See qemu/build-tools.sh.
# Debian's QEMU binaries lack the machine (built without libcbor), so QEMU is built from
# Debian's source package: trixie's, whose deb-src line this adds (bookworm-backports' .dsc is
# gone from the archive). The tools are cached under QEMU_TOOLS_DIR by version.
QEMU_DEB_SUITE := trixie
QEMU_DEB_VERSION := 1:10.0.13+ds-0+deb13u1
QEMU_MESON_VERSION := 1.5.2
VHOST_VSOCK_VERSION := 0.3.0
QEMU_APT_PACKAGES := dpkg-dev python3-venv ninja-build pkg-config gcc make flex bison \
  libglib2.0-dev libpixman-1-dev libfdt-dev libcbor-dev libgnutls28-dev zlib1g-dev
QEMU_TOOLS_DIR ?= $(CURDIR)/.cache/qemu-tools
QEMU_APT_SOURCE := /etc/apt/sources.list.d/nitrosync-qemu-src.sources

setup-apt-qemu:
	@$(call apt-install,$(QEMU_APT_PACKAGES))
	@if ! grep -qs '^Suites: $(QEMU_DEB_SUITE)$$' $(QEMU_APT_SOURCE); then \
	  echo "adding a deb-src line for $(QEMU_DEB_SUITE) ($(QEMU_APT_SOURCE))"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  printf '%s\n' '# nitrosync (make qemu-tools): the source of QEMU, built with libcbor for -M nitro-enclave' \
	    'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: $(QEMU_DEB_SUITE)' 'Components: main' \
	    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | $$SUDO tee $(QEMU_APT_SOURCE) >/dev/null; \
	  $$SUDO apt-get update -qq; \
	fi

## qemu-tools: QEMU (nitro-enclave machine) and vhost-device-vsock, under QEMU_TOOLS_DIR.
qemu-tools: setup-apt-qemu
	QEMU_TOOLS_DIR='$(QEMU_TOOLS_DIR)' QEMU_DEB_VERSION='$(QEMU_DEB_VERSION)' \
	QEMU_DEB_SUITE='$(QEMU_DEB_SUITE)' MESON_VERSION='$(QEMU_MESON_VERSION)' \
	VHOST_VSOCK_VERSION='$(VHOST_VSOCK_VERSION)' CARGO='$(CARGO)' qemu/build-tools.sh

## eif-qemu: the QEMU test image, out/eif-qemu/: the production image with the relay at
## CID 2 (its own measurements; PCR1 equals production's). See qemu/build-test-eif.sh.
QEMU_EIF_OUT ?= $(CURDIR)/out/eif-qemu
QEMU_PARENT_CID := 2
QEMU_BIN = $(QEMU_TOOLS_DIR)/qemu-$(subst :,_,$(subst ~,_,$(lastword $(subst :, ,$(QEMU_DEB_VERSION)))))/bin/qemu-system-x86_64
VHOST_VSOCK_BIN = $(QEMU_TOOLS_DIR)/vhost-device-vsock-$(VHOST_VSOCK_VERSION)/bin/vhost-device-vsock
BOOT_TIMEOUT_S ?= 180

eif-qemu: eif
	EIF_OUT='$(EIF_OUT)' EIF_WORK_DIR='$(EIF_WORK_DIR)' EIF_BUILD='$(EIF_BUILD)' \
	EIF_CMDLINE='$(EIF_CMDLINE)' SOURCE_DATE_EPOCH='$(EIF_SOURCE_DATE_EPOCH)' \
	QEMU_EIF_OUT='$(QEMU_EIF_OUT)' QEMU_PARENT_CID='$(QEMU_PARENT_CID)' qemu/build-test-eif.sh

## eif-boot-test: boot the QEMU test image under -M nitro-enclave; the real parent reaches the
## enclave over real vsock and checks the emulated NSM's PCRs. See qemu/boot-test.sh.
# Only the three host binaries it runs (not the whole workspace).
eif-boot-test: qemu-tools eif-qemu
	$(CARGO) build -p nitrosync-parent -p nitrosync-cli -p nitrosync-attestation --bins
	QEMU_BIN='$(QEMU_BIN)' VHOST_VSOCK_BIN='$(VHOST_VSOCK_BIN)' \
	QEMU_EIF='$(QEMU_EIF_OUT)/nitrosync-enclave-qemu.eif' \
	QEMU_MEASUREMENTS='$(QEMU_EIF_OUT)/measurements-qemu.json' \
	BOOT_RUN_DIR='$(CURDIR)/run/eif-boot-test' BOOT_TIMEOUT_S='$(BOOT_TIMEOUT_S)' qemu/boot-test.sh

clean:
	$(CARGO) clean
	rm -rf run fuzz/target fuzz-enclave/target
