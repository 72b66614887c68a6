#!/usr/bin/env bash
# Build the tools that boot the enclave image as Nitro does (what `make qemu-tools` runs):
#
#   - QEMU with the `nitro-enclave` machine (Debian's binary packages are built without
#     libcbor, so they lack it), from Debian's source package, plus the qboot firmware the
#     machine boots with (built from the same source package, as Debian's qemu-system-data);
#   - vhost-device-vsock (crates.io), whose `uds` backend turns the guest's vsock
#     connections to CID 2 into Unix sockets on the host.
#
# Each lands in its own folder under QEMU_TOOLS_DIR, named by its version; a folder with a
# `.complete` marker is not built again, so a second run does nothing.
#
# Environment (the Makefile sets all of these; see its "QEMU" section):
#   QEMU_TOOLS_DIR        the cache folder (git-ignored)
#   QEMU_DEB_VERSION      the Debian source package version of qemu (apt-get source qemu=...)
#   QEMU_DEB_SUITE        the suite whose deb-src line must be configured (see the Makefile)
#   MESON_VERSION         meson from PyPI (QEMU needs >= 1.5; bookworm has 1.0)
#   VHOST_VSOCK_VERSION   vhost-device-vsock's crates.io version
#   QEMU_JOBS             parallel jobs (default 2); the build runs under nice
set -euo pipefail

die() { echo "qemu-tools: error: $*" >&2; exit 1; }
say() { echo "qemu-tools: $*" >&2; }

: "${QEMU_TOOLS_DIR:?}" "${QEMU_DEB_VERSION:?}" "${MESON_VERSION:?}" "${VHOST_VSOCK_VERSION:?}"
CARGO=${CARGO:-cargo}
jobs=${QEMU_JOBS:-2}
mkdir -p "$QEMU_TOOLS_DIR"
tools=$(cd "$QEMU_TOOLS_DIR" && pwd)

# Folder names: the Debian version without the epoch, '~' and ':' made file-name friendly.
qemu_key=$(printf '%s' "${QEMU_DEB_VERSION#*:}" | tr '~:' '__')
qemu_dir=$tools/qemu-$qemu_key
meson_dir=$tools/meson-$MESON_VERSION
vsock_dir=$tools/vhost-device-vsock-$VHOST_VSOCK_VERSION

# --- meson (a venv of its own; QEMU's configure finds it through --python) ----------------
if [ ! -f "$meson_dir/.complete" ]; then
  say "meson $MESON_VERSION from PyPI into ${meson_dir#"$PWD"/}"
  rm -rf "$meson_dir"
  python3 -m venv "$meson_dir"
  "$meson_dir/bin/pip" install -q --disable-pip-version-check "meson==$MESON_VERSION"
  touch "$meson_dir/.complete"
fi

# --- QEMU --------------------------------------------------------------------------------
if [ ! -f "$qemu_dir/.complete" ]; then
  start=$(date +%s)
  src=$tools/src/qemu-$qemu_key
  rm -rf "$src" "$qemu_dir"
  mkdir -p "$src"
  say "apt-get source qemu=$QEMU_DEB_VERSION"
  # apt checks the files against the signed Sources index; dpkg-source -x also applies
  # Debian's patches. The download runs as root when root (the _apt user cannot write here).
  (cd "$src" && apt-get source -qq --download-only "qemu=$QEMU_DEB_VERSION" >/dev/null) \
    || die "apt-get source qemu=$QEMU_DEB_VERSION failed; is the deb-src line for ${QEMU_DEB_SUITE:-its suite} there (make qemu-tools adds it) and apt-get update run?"
  dsc=$(ls "$src"/qemu_*.dsc)
  (cd "$src" && dpkg-source -q -x "$dsc" tree >/dev/null 2>&1) || die "dpkg-source -x $dsc failed"
  tree=$src/tree

  # The nitro-enclave machine (hw/i386/Kconfig) needs FDT (microvm), LIBCBOR and GNUTLS
  # (the EIF loader and the NSM device) and VHOST_USER (the vsock device). Nothing else.
  say "configuring QEMU (x86_64-softmmu, nitro-enclave only)"
  mkdir -p "$tree/build"
  (cd "$tree/build" && ../configure \
      --prefix="$qemu_dir" \
      --python="$meson_dir/bin/python3" \
      --target-list=x86_64-softmmu \
      --without-default-features \
      --disable-download \
      --enable-tcg --enable-kvm \
      --enable-fdt=system --enable-libcbor --enable-gnutls --enable-vhost-user \
      --disable-docs --disable-tools --disable-werror --disable-debug-info \
      --disable-install-blobs) >"$src/configure.log" 2>&1 \
    || { tail -n 40 "$src/configure.log" >&2; die "QEMU's configure failed (log: $src/configure.log)"; }
  say "building QEMU (-j$jobs, nice)"
  nice -n 10 ninja -C "$tree/build" -j "$jobs" qemu-system-x86_64 >"$src/build.log" 2>&1 \
    || { tail -n 40 "$src/build.log" >&2; die "QEMU's build failed (log: $src/build.log)"; }
  mkdir -p "$qemu_dir/bin" "$qemu_dir/share/qemu"
  install -m0755 "$tree/build/qemu-system-x86_64" "$qemu_dir/bin/"

  # qboot: the firmware microvm (and so nitro-enclave, which has no ACPI) boots with.
  say "building qboot (the machine's firmware)"
  "$meson_dir/bin/meson" setup "$tree/roms/qboot" "$src/qboot" >"$src/qboot.log" 2>&1 \
    && nice -n 10 ninja -C "$src/qboot" >>"$src/qboot.log" 2>&1 \
    || { tail -n 20 "$src/qboot.log" >&2; die "qboot's build failed (log: $src/qboot.log)"; }
  install -m0644 "$src/qboot/bios.bin" "$qemu_dir/share/qemu/qboot.rom"

  "$qemu_dir/bin/qemu-system-x86_64" -M help | grep -q '^nitro-enclave ' \
    || die "the QEMU just built has no nitro-enclave machine (see $src/configure.log)"
  rm -rf "$tree"
  touch "$qemu_dir/.complete"
  say "QEMU built in $(( $(date +%s) - start ))s"
fi

# --- vhost-device-vsock -------------------------------------------------------------------
if [ ! -f "$vsock_dir/.complete" ]; then
  start=$(date +%s)
  rm -rf "$vsock_dir"
  say "cargo install vhost-device-vsock $VHOST_VSOCK_VERSION (nice)"
  # --locked: the crate's own Cargo.lock, so the dependencies do not float.
  env -u RUSTFLAGS nice -n 10 "$CARGO" install -q --locked -j "$jobs" \
    --version "=$VHOST_VSOCK_VERSION" --root "$vsock_dir" vhost-device-vsock \
    || die "cargo install vhost-device-vsock $VHOST_VSOCK_VERSION failed"
  touch "$vsock_dir/.complete"
  say "vhost-device-vsock built in $(( $(date +%s) - start ))s"
fi

echo "qemu:               ${qemu_dir#"$PWD"/}/bin/qemu-system-x86_64 ($("$qemu_dir/bin/qemu-system-x86_64" --version | head -n1))"
echo "vhost-device-vsock: ${vsock_dir#"$PWD"/}/bin/vhost-device-vsock"
"$qemu_dir/bin/qemu-system-x86_64" -M help | grep '^nitro-enclave '
