#!/usr/bin/env bash
# Build the enclave kernel (bzImage) from Debian's linux-source package, reproducibly.
#
#   eif/build-kernel.sh OUT_DIR
#
# Writes OUT_DIR/bzImage, OUT_DIR/bzImage.config, OUT_DIR/gen_init_cpio (the kernel tree's
# cpio writer, for the ramdisks) and OUT_DIR/kernel.env (facts for measurements.json).
#
# Environment (the Makefile sets these):
#   EIF_KERNEL_PKG          Debian source package, e.g. linux-source-6.12
#   EIF_KERNEL_PKG_VERSION  its exact version, e.g. 6.12.118-1~deb12u1
#   EIF_KERNEL_PKG_SHA256   the .deb's SHA-256, checked after download
#   SOURCE_DATE_EPOCH       the build time written into the kernel (uname -v)
#   EIF_DOWNLOAD_DIR        where the .deb and its tarball are kept (reused by every build)
#   EIF_WORK_DIR            scratch space for the kernel tree (wiped on every kernel build)
#   EIF_KERNEL_CACHE        directory of built kernels keyed by their inputs; empty: no cache
#   EIF_JOBS                make -j (default: nproc)
#
# The kernel is configured from `make tinyconfig` plus eif/kernel.config merged with
# merge_config.sh, and the build fails if any setting of the fragment did not survive.
set -euo pipefail

die() { echo "build-kernel: error: $*" >&2; exit 1; }
say() { echo "build-kernel: $*" >&2; }

[ $# -eq 1 ] || die "usage: $0 OUT_DIR"
out=$1
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/kernel.config

: "${EIF_KERNEL_PKG:?set EIF_KERNEL_PKG (the Makefile does)}"
: "${EIF_KERNEL_PKG_VERSION:?set EIF_KERNEL_PKG_VERSION (the Makefile does)}"
: "${EIF_KERNEL_PKG_SHA256:?set EIF_KERNEL_PKG_SHA256 (the Makefile does)}"
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH (the Makefile does)}"
: "${EIF_DOWNLOAD_DIR:?set EIF_DOWNLOAD_DIR}"
: "${EIF_WORK_DIR:?set EIF_WORK_DIR}"
EIF_KERNEL_CACHE=${EIF_KERNEL_CACHE-}
jobs=${EIF_JOBS:-$(nproc)}

for tool in apt-get dpkg-deb tar xz gcc ld make flex bison bc perl sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (make eif installs the build dependencies)"
done
[ -f /usr/include/libelf.h ] || die "libelf-dev is missing (make eif installs it)"

mkdir -p "$out" "$EIF_DOWNLOAD_DIR"
out=$(cd "$out" && pwd)

# --- 1. The source package: download once, check its hash, take the tarball out. -------
deb=$EIF_DOWNLOAD_DIR/${EIF_KERNEL_PKG}_${EIF_KERNEL_PKG_VERSION}_all.deb
if [ ! -f "$deb" ]; then
  say "downloading $EIF_KERNEL_PKG=$EIF_KERNEL_PKG_VERSION (about 150 MB)"
  tmp=$(mktemp -d "$EIF_DOWNLOAD_DIR/.download.XXXXXX")
  # apt drops privileges to _apt for downloads; let it write into the directory.
  if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
  if ! (cd "$tmp" && apt-get download -q "$EIF_KERNEL_PKG=$EIF_KERNEL_PKG_VERSION" >&2); then
    rm -rf "$tmp"
    die "apt-get download $EIF_KERNEL_PKG=$EIF_KERNEL_PKG_VERSION failed. Run apt-get update;" \
        "if Debian no longer serves this version, pin the one 'apt-cache policy $EIF_KERNEL_PKG'" \
        "offers in the Makefile (EIF_KERNEL_PKG_VERSION and EIF_KERNEL_PKG_SHA256)."
  fi
  found=("$tmp"/*.deb)
  [ ${#found[@]} -eq 1 ] && [ -f "${found[0]}" ] || { rm -rf "$tmp"; die "apt-get download left no .deb"; }
  mv "${found[0]}" "$deb"
  rm -rf "$tmp"
fi
deb_sha=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$deb_sha" != "$EIF_KERNEL_PKG_SHA256" ]; then
  die "$deb has SHA-256 $deb_sha, the Makefile pins $EIF_KERNEL_PKG_SHA256; delete the file" \
      "to download it again, or fix the pin"
fi

series=${EIF_KERNEL_PKG#linux-source-}
tarball=$EIF_DOWNLOAD_DIR/linux-source-${series}_${EIF_KERNEL_PKG_VERSION}.tar.xz
if [ ! -f "$tarball" ]; then
  dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/linux-source-$series.tar.xz" >"$tarball.part" \
    || die "could not take usr/src/linux-source-$series.tar.xz out of $deb"
  mv "$tarball.part" "$tarball"
fi
tarball_sha=$(sha256sum "$tarball" | cut -d' ' -f1)

# --- 2. The cache key: everything that goes into the bzImage. ---------------------------
gcc_version=$(gcc --version | head -n1)
ld_version=$(ld --version | head -n1)
xz_version=$(xz --version | head -n1)
key=$(
  {
    echo "package=$EIF_KERNEL_PKG $EIF_KERNEL_PKG_VERSION"
    echo "tarball=$tarball_sha"
    echo "fragment=$(sha256sum "$fragment" | cut -d' ' -f1)"
    echo "script=$(sha256sum "$0" | cut -d' ' -f1)"
    echo "gcc=$gcc_version"
    echo "ld=$ld_version"
    echo "xz=$xz_version"
    echo "epoch=$SOURCE_DATE_EPOCH"
  } | sha256sum | cut -d' ' -f1
)

write_env() {
  cat >"$out/kernel.env" <<EOF
kernel_package=$EIF_KERNEL_PKG
kernel_package_version=$EIF_KERNEL_PKG_VERSION
kernel_package_deb_sha256=$deb_sha
kernel_source_tarball_sha256=$tarball_sha
kernel_config_fragment_sha256=$(sha256sum "$fragment" | cut -d' ' -f1)
kernel_config_sha256=$(sha256sum "$out/bzImage.config" | cut -d' ' -f1)
kernel_bzimage_sha256=$(sha256sum "$out/bzImage" | cut -d' ' -f1)
kernel_cache_key=$key
gcc_version=$gcc_version
binutils_version=$ld_version
EOF
}

products=(bzImage bzImage.config gen_init_cpio)
if [ -n "$EIF_KERNEL_CACHE" ] && [ -f "$EIF_KERNEL_CACHE/$key/bzImage" ]; then
  say "kernel from the cache ($EIF_KERNEL_CACHE/$key)"
  for f in "${products[@]}"; do cp "$EIF_KERNEL_CACHE/$key/$f" "$out/$f"; done
  write_env
  exit 0
fi

# --- 3. Configure: tinyconfig + the fragment, then check every setting survived. -------
src=$EIF_WORK_DIR/linux
rm -rf "$src"
mkdir -p "$src"
say "extracting $(basename "$tarball")"
tar -xJf "$tarball" -C "$src" --strip-components=1
[ -f "$src/Makefile" ] || die "the tarball did not hold a kernel tree"

# Fixed identity and time: these end up in the image (uname -v, /proc/version).
export KBUILD_BUILD_TIMESTAMP
KBUILD_BUILD_TIMESTAMP=$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" '+%a %b %e %H:%M:%S UTC %Y')
export KBUILD_BUILD_USER=nitrosync KBUILD_BUILD_HOST=eif KBUILD_BUILD_VERSION=1
export LC_ALL=C TZ=UTC ARCH=x86_64
unset CROSS_COMPILE KCFLAGS KCPPFLAGS KAFLAGS LOCALVERSION

kmake() { make -C "$src" -s "$@"; }
kmake tinyconfig >/dev/null
# -n: allnoconfig on top of tinyconfig + fragment, so options the fragment makes visible
# default to off instead of to their (often generous) defaults.
(cd "$src" && ./scripts/kconfig/merge_config.sh -n -O . .config "$fragment" >/dev/null)

missing=0
while IFS= read -r line; do
  case $line in
    CONFIG_*=*)
      grep -qxF -- "$line" "$src/.config" || {
        name=${line%%=*}
        got=$(grep -E "^$name=|^# $name is not set" "$src/.config" || echo "absent (unmet dependencies)")
        echo "build-kernel: required $line, got: $got" >&2
        missing=1
      } ;;
    "# CONFIG_"*" is not set")
      name=${line#\# }; name=${name%% *}
      if grep -qE "^$name=[ym]" "$src/.config"; then
        echo "build-kernel: required $line, got: $(grep -E "^$name=" "$src/.config")" >&2
        missing=1
      fi ;;
  esac
done <"$fragment"
[ "$missing" = 0 ] || die "the kernel config lost settings of eif/kernel.config (see above)"

# --- 4. Build. --------------------------------------------------------------------------
say "building bzImage with $jobs jobs (a few minutes)"
start=$(date +%s)
kmake -j"$jobs" bzImage
say "bzImage built in $(( $(date +%s) - start ))s"

cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
cp "$src/.config" "$out/bzImage.config"
cp "$src/usr/gen_init_cpio" "$out/gen_init_cpio"
rm -rf "$src"

if [ -n "$EIF_KERNEL_CACHE" ]; then
  mkdir -p "$EIF_KERNEL_CACHE"
  tmp=$(mktemp -d "$EIF_KERNEL_CACHE/.new.XXXXXX")
  for f in "${products[@]}"; do cp "$out/$f" "$tmp/$f"; done
  rm -rf "${EIF_KERNEL_CACHE:?}/$key"
  mv "$tmp" "$EIF_KERNEL_CACHE/$key"
fi
write_env
