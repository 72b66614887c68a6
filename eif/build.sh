#!/usr/bin/env bash
# Build the enclave image: nitrosync-enclave.eif and measurements.json (what `make eif` runs).
#
#   eif/build.sh            (from the checkout to build; the Makefile sets the environment)
#
# Steps: kernel (eif/build-kernel.sh, cached by its inputs) -> the two static Rust binaries
# -> two ramdisks (init, application) -> eif_build -> measurements.json -> if
# `nitrosync-attest measure` exists, check that it computes the same PCRs from the EIF.
#
# Environment (the Makefile sets all of these; see its "Enclave image" section):
#   EIF_OUT            output directory (nitrosync-enclave.eif, measurements.json, ramdisks)
#   EIF_CMDLINE        the kernel command line measured into PCR0/PCR1
#   EIF_BUILD          the eif_build binary
#   EIF_TARGET_DIR     the cargo target directory of this build (inside the checkout)
#   SOURCE_DATE_EPOCH  the one timestamp of the build (kernel, ramdisks, EIF metadata)
#   plus what eif/build-kernel.sh reads (EIF_KERNEL_*, EIF_DOWNLOAD_DIR, EIF_WORK_DIR).
set -euo pipefail

die() { echo "eif: error: $*" >&2; exit 1; }
say() { echo "eif: $*" >&2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
: "${EIF_OUT:?}" "${EIF_CMDLINE:?}" "${EIF_BUILD:?}" "${EIF_TARGET_DIR:?}" "${SOURCE_DATE_EPOCH:?}"
: "${EIF_WORK_DIR:?}"
CARGO=${CARGO:-cargo}
target=x86_64-unknown-linux-gnu
[ -x "$EIF_BUILD" ] || die "eif_build is not at $EIF_BUILD (make eif installs it)"
for tool in gzip python3 readelf cpio; do
  command -v "$tool" >/dev/null || die "$tool is missing (make eif installs the build dependencies)"
done

start=$(date +%s)
mkdir -p "$EIF_OUT" "$EIF_WORK_DIR"
out=$(cd "$EIF_OUT" && pwd)
work=$(cd "$EIF_WORK_DIR" && pwd)
rm -f "$out/nitrosync-enclave.eif" "$out/measurements.json"

# --- 1. Kernel. -------------------------------------------------------------------------
"$repo/eif/build-kernel.sh" "$work/kernel"
cp "$work/kernel/bzImage" "$work/kernel/bzImage.config" "$out/"

# --- 2. The two static binaries. --------------------------------------------------------
# Paths that could end up in the binaries (panic messages, file!()) are remapped, so the
# output does not depend on where the checkout or the cargo home is. RUSTFLAGS apply to the
# target only (--target is given), not to build scripts and proc macros. The profile
# settings come from the environment so that the workspace's release profile stays as it is.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
cargo_home=$(cd "$cargo_home" && pwd)
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
export RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$repo=/build/nitrosync --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$rustup_home=/rustup"
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_RELEASE_DEBUG=0
export CARGO_PROFILE_RELEASE_STRIP=symbols
# C code compiled by build scripts (ring's assembly and C) gets the same remapping.
export CFLAGS_x86_64_unknown_linux_gnu="-ffile-prefix-map=$repo=/build/nitrosync -ffile-prefix-map=$cargo_home=/cargo"
export SOURCE_DATE_EPOCH LC_ALL=C TZ=UTC
unset RUSTC_WRAPPER CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

cargo_build() { # package, binary, extra args
  local pkg=$1 bin=$2; shift 2
  say "building $bin ($pkg, release, static)"
  "$CARGO" build --release --locked --target "$target" --target-dir "$EIF_TARGET_DIR" \
    -p "$pkg" --bin "$bin" "$@" >&2 \
    || die "cargo build of $bin failed (see above)"
  local path=$EIF_TARGET_DIR/$target/release/$bin
  [ -f "$path" ] || die "cargo did not produce $path"
  if readelf -lW "$path" | grep -q 'Requesting program interpreter'; then
    die "$bin is dynamically linked ($(readelf -dW "$path" | grep -o 'Shared library: \[[^]]*\]' | tr '\n' ' '));" \
        "the enclave image has no shared libraries, so every dependency must link statically"
  fi
}

metadata=$("$CARGO" metadata --no-deps --format-version 1 --locked) \
  || die "cargo metadata --locked failed (see above; is Cargo.lock up to date?)"
if ! python3 -c 'import json,sys; sys.exit(0 if any(p["name"]=="nitrosync-init" for p in json.load(sys.stdin)["packages"]) else 1)' <<<"$metadata"; then
  die "the workspace has no package nitrosync-init (init/, PID 1 of the enclave); the image needs it"
fi
cargo_build nitrosync-enclave nitrosync-enclave --features nsm
cargo_build nitrosync-init nitrosync-init
enclave_bin=$EIF_TARGET_DIR/$target/release/nitrosync-enclave
init_bin=$EIF_TARGET_DIR/$target/release/nitrosync-init

# --- 3. Two ramdisks: init (PCR1 with the kernel) and the application (PCR2). -----------
# gen_init_cpio (from the kernel tree) takes explicit modes and owners and writes entries in
# the order given; -t fixes every mtime. gzip -n leaves out the name and time.
gen=$work/kernel/gen_init_cpio
cat >"$work/init.list" <<EOF
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
dir /sys 0755 0 0
file /init $init_bin 0755 0 0
EOF
cat >"$work/app.list" <<EOF
dir /bin 0755 0 0
file /bin/nitrosync-enclave $enclave_bin 0755 0 0
EOF
for rd in init app; do
  "$gen" -t "$SOURCE_DATE_EPOCH" "$work/$rd.list" | gzip -n -9 >"$out/$rd.cpio.gz.part" \
    || die "could not write the $rd ramdisk"
  mv "$out/$rd.cpio.gz.part" "$out/$rd.cpio.gz"
done

# --- 4. The EIF. --------------------------------------------------------------------------
build_time=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%S+00:00)
say "writing nitrosync-enclave.eif"
"$EIF_BUILD" \
  --kernel "$out/bzImage" --kernel_config "$out/bzImage.config" \
  --cmdline "$EIF_CMDLINE" \
  --ramdisk "$out/init.cpio.gz" --ramdisk "$out/app.cpio.gz" \
  --name nitrosync-enclave --build-time "$build_time" \
  --output "$out/nitrosync-enclave.eif.part" >"$work/eif_build.out" \
  || die "eif_build failed"
mv "$out/nitrosync-enclave.eif.part" "$out/nitrosync-enclave.eif"

# --- 5. measurements.json. ------------------------------------------------------------------
{
  cat "$work/kernel/kernel.env"
  echo "cmdline=$EIF_CMDLINE"
  echo "source_date_epoch=$SOURCE_DATE_EPOCH"
  echo "rustc=$(rustc -vV | paste -sd ';' | sed 's/;/; /g')"
  echo "cargo=$("$CARGO" -V)"
  echo "cargo_lock_sha256=$(sha256sum Cargo.lock | cut -d' ' -f1)"
  echo "rust_target=$target"
  echo "enclave_features=nsm"
  echo "enclave_bin_sha256=$(sha256sum "$enclave_bin" | cut -d' ' -f1)"
  echo "init_bin_sha256=$(sha256sum "$init_bin" | cut -d' ' -f1)"
  echo "init_ramdisk_sha256=$(sha256sum "$out/init.cpio.gz" | cut -d' ' -f1)"
  echo "app_ramdisk_sha256=$(sha256sum "$out/app.cpio.gz" | cut -d' ' -f1)"
  echo "gzip=$(gzip --version | head -n1)"
  echo "eif_build=${EIF_BUILD_VERSION:-unknown}"
  # Only the checkout's own repository (a copy of the tree inside another checkout has none).
  if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$repo" ] && commit=$(git rev-parse HEAD 2>/dev/null); then
    [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+dirty"
    echo "source_commit=$commit"
  fi
} >"$work/inputs.env"
python3 "$repo/eif/measurements.py" \
  --eif "$out/nitrosync-enclave.eif" --eif-build-output "$work/eif_build.out" \
  --inputs "$work/inputs.env" --out "$out/measurements.json"

# --- 6. Cross-check with nitrosync-attest measure, when it exists. --------------------------
attest=${EIF_ATTEST:-$repo/target/debug/nitrosync-attest}
if [ -x "$attest" ] && "$attest" measure --help >/dev/null 2>&1; then
  "$attest" measure "$out/nitrosync-enclave.eif" >"$work/attest-measure.json" \
    || die "$attest measure failed on the EIF"
  echo "nitrosync-attest measure against measurements.json:"
  python3 "$repo/eif/measurements.py" --compare "$out/measurements.json" "$work/attest-measure.json" \
    || die "nitrosync-attest measure disagrees with measurements.json (see above)"
  say "nitrosync-attest measure agrees with measurements.json"
else
  say "note: no $attest with a 'measure' command (make build); PCR cross-check skipped"
fi

# --- 7. What is inside, and the figures. ----------------------------------------------------
echo
echo "Image contents (init ramdisk, then application ramdisk):"
for rd in init app; do
  gzip -dc "$out/$rd.cpio.gz" | cpio -itv --quiet 2>/dev/null | sed "s|^|  $rd: |"
done
echo
python3 "$repo/eif/measurements.py" --summary "$out/measurements.json"
printf '  %-22s %s bytes\n' "bzImage" "$(stat -c %s "$out/bzImage")" \
  "init.cpio.gz" "$(stat -c %s "$out/init.cpio.gz")" \
  "app.cpio.gz" "$(stat -c %s "$out/app.cpio.gz")"
echo "  built in $(( $(date +%s) - start ))s; output in ${out#"$repo"/}/"
