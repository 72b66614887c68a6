#!/usr/bin/env bash
# The QEMU test image: the production image (`make eif`) with one difference, the enclave's
# parent CID (what `make eif-boot-test` boots).
#
# Why a second image: init (PID 1) takes the enclave's command line from its built-in
# production arguments (relay `vsock:3:8000`, Nitro's parent CID) or from
# /etc/nitrosync/enclave.args in the application ramdisk, and deliberately ignores the kernel
# command line. vhost-device-vsock only carries guest connections to CID 2 (the host), so
# under QEMU the relay must be `vsock:2:8000`, and the only place to say so is that file,
# which is measured in PCR2 (and PCR0). So this image has its own measurements
# (measurements-qemu.json) and is never the production image:
#   - PCR1 (kernel, command line, init ramdisk) must equal production's: the same bytes;
#   - the application ramdisk holds the production enclave binary, taken out of the
#     production ramdisk, plus the argument file.
#
# Environment (the Makefile sets these):
#   EIF_OUT          the production image's directory (make eif's output)
#   EIF_WORK_DIR     make eif's work directory (gen_init_cpio, inputs.env)
#   EIF_BUILD        the eif_build binary; EIF_CMDLINE; SOURCE_DATE_EPOCH
#   QEMU_EIF_OUT     output directory (nitrosync-enclave-qemu.eif, measurements-qemu.json)
#   QEMU_PARENT_CID  the parent's CID under QEMU (2)
set -euo pipefail

die() { echo "test-eif: error: $*" >&2; exit 1; }
say() { echo "test-eif: $*" >&2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
: "${EIF_OUT:?}" "${EIF_WORK_DIR:?}" "${EIF_BUILD:?}" "${EIF_CMDLINE:?}" "${SOURCE_DATE_EPOCH:?}"
: "${QEMU_EIF_OUT:?}" "${QEMU_PARENT_CID:?}"
prod=$EIF_OUT
for f in nitrosync-enclave.eif measurements.json bzImage bzImage.config init.cpio.gz app.cpio.gz; do
  [ -f "$prod/$f" ] || die "$prod/$f is missing (make eif builds it)"
done
gen=$EIF_WORK_DIR/kernel/gen_init_cpio
[ -x "$gen" ] || die "$gen is missing (make eif builds it)"
[ -f "$EIF_WORK_DIR/inputs.env" ] || die "$EIF_WORK_DIR/inputs.env is missing (make eif writes it)"
case $QEMU_PARENT_CID in ''|*[!0-9]*) die "QEMU_PARENT_CID must be a number" ;; esac

mkdir -p "$QEMU_EIF_OUT"
out=$(cd "$QEMU_EIF_OUT" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f "$out/nitrosync-enclave-qemu.eif" "$out/measurements-qemu.json"

# The production enclave binary, out of the production application ramdisk.
(cd "$tmp" && mkdir x && cd x && gzip -dc "$prod/app.cpio.gz" | cpio -id --quiet) \
  || die "cannot unpack $prod/app.cpio.gz"
enclave_bin=$tmp/x/bin/nitrosync-enclave
[ -f "$enclave_bin" ] || die "$prod/app.cpio.gz holds no /bin/nitrosync-enclave"

# The production arguments (init/src/argv.rs), with the relay at the QEMU parent's CID. The
# identity is ephemeral: the simulator's KMS does not take QEMU's unsigned documents.
cat >"$tmp/enclave.args" <<EOF
# nitrosync QEMU test image (make eif-boot-test): never a production image.
/bin/nitrosync-enclave
--control
vsock:any:5000
--relay
vsock:$QEMU_PARENT_CID:8000
--log-stderr
text
--identity
ephemeral
EOF
cat >"$tmp/app.list" <<EOF
dir /bin 0755 0 0
file /bin/nitrosync-enclave $enclave_bin 0755 0 0
dir /etc 0755 0 0
dir /etc/nitrosync 0755 0 0
file /etc/nitrosync/enclave.args $tmp/enclave.args 0644 0 0
EOF
"$gen" -t "$SOURCE_DATE_EPOCH" "$tmp/app.list" | gzip -n -9 >"$out/app-qemu.cpio.gz" \
  || die "could not write the test application ramdisk"

build_time=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%S+00:00)
say "writing nitrosync-enclave-qemu.eif (relay vsock:$QEMU_PARENT_CID:8000)"
"$EIF_BUILD" \
  --kernel "$prod/bzImage" --kernel_config "$prod/bzImage.config" \
  --cmdline "$EIF_CMDLINE" \
  --ramdisk "$prod/init.cpio.gz" --ramdisk "$out/app-qemu.cpio.gz" \
  --name nitrosync-enclave-qemu --build-time "$build_time" \
  --output "$out/nitrosync-enclave-qemu.eif.part" >"$tmp/eif_build.out" \
  || die "eif_build failed"
mv "$out/nitrosync-enclave-qemu.eif.part" "$out/nitrosync-enclave-qemu.eif"

grep -v '^app_ramdisk_sha256=' "$EIF_WORK_DIR/inputs.env" >"$tmp/inputs.env"
{
  echo "app_ramdisk_sha256=$(sha256sum "$out/app-qemu.cpio.gz" | cut -d' ' -f1)"
  echo "test_image=qemu (relay vsock:$QEMU_PARENT_CID:8000, identity ephemeral)"
  echo "production_measurements_pcr0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["PCR0"])' "$prod/measurements.json")"
} >>"$tmp/inputs.env"
python3 "$repo/eif/measurements.py" \
  --eif "$out/nitrosync-enclave-qemu.eif" --eif-build-output "$tmp/eif_build.out" \
  --inputs "$tmp/inputs.env" --out "$out/measurements-qemu.json"

pcr() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
[ "$(pcr "$out/measurements-qemu.json" PCR1)" = "$(pcr "$prod/measurements.json" PCR1)" ] \
  || die "the test image's PCR1 differs from production's: kernel, command line and init must be the same bytes"
[ "$(pcr "$out/measurements-qemu.json" PCR2)" != "$(pcr "$prod/measurements.json" PCR2)" ] \
  || die "the test image's PCR2 equals production's: the argument file is missing"
say "PCR1 equals production's; PCR0 and PCR2 are the test image's own"
python3 "$repo/eif/measurements.py" --summary "$out/measurements-qemu.json"
