#!/usr/bin/env bash
# Build the enclave image twice, in two fresh directories, and check that both builds give
# the same PCR0, PCR1, PCR2 and EIF SHA-256 (what `make eif-verify` and CI run).
#
#   eif/verify.sh
#
# The two builds are copies of the checkout's committed HEAD (git clone), so uncommitted
# changes are NOT in them. EIF_VERIFY_FROM=worktree copies the working tree instead (tracked
# and untracked files that git does not ignore), to check uncommitted work locally.
#
# Each build has its own cargo target directory and builds its own kernel (no kernel cache);
# the directories have names of different lengths, so a path that leaks into the image shows.
# They share only pinned inputs: the downloaded kernel .deb (checked against its SHA-256
# pin), the cargo registry, and the eif_build tool.
set -euo pipefail

die() { echo "eif-verify: error: $*" >&2; exit 1; }
say() { echo "eif-verify: $*" >&2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${EIF_VERIFY_DIR:-$repo/.cache/eif-verify}
from=${EIF_VERIFY_FROM:-head}
make=${MAKE:-make}
dirs=("$base/one" "$base/second-build")

case $from in
  head) git -C "$repo" rev-parse --verify -q HEAD >/dev/null || die "$repo has no commit to build" ;;
  worktree) ;;
  *) die "EIF_VERIFY_FROM is '$from'; use head or worktree" ;;
esac
if [ "$from" = head ] && [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  say "note: the checkout has uncommitted changes; they are not part of this check (EIF_VERIFY_FROM=worktree includes them)"
fi

start=$(date +%s)
rm -rf "$base"
mkdir -p "$base"
# Both builds get the same sources, taken once now: HEAD's commit, or a snapshot of the
# working tree (which others may be editing while the first build runs).
commit=$(git -C "$repo" rev-parse HEAD)
if [ "$from" = worktree ]; then
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) >"$base/worktree.tar"
fi
times=()
for dir in "${dirs[@]}"; do
  if [ "$from" = head ]; then
    git clone -q --no-hardlinks "$repo" "$dir"
    git -C "$dir" checkout -q --detach "$commit"
  else
    mkdir -p "$dir"
    tar -xf "$base/worktree.tar" -C "$dir"
  fi
  [ -x "$dir/eif/build.sh" ] || die "${from/head/HEAD} has no eif/build.sh: commit the image build first (or EIF_VERIFY_FROM=worktree)"
  say "building in ${dir#"$repo"/}"
  t0=$(date +%s)
  # The sub-make runs the copy's own Makefile. EIF_KERNEL_CACHE is empty: no kernel cache.
  "$make" -C "$dir" --no-print-directory eif \
    EIF_KERNEL_CACHE= \
    EIF_OUT="$dir/out/eif" EIF_TARGET_DIR="$dir/target/eif" EIF_WORK_DIR="$dir/.cache/eif/work" \
    EIF_DOWNLOAD_DIR="$repo/.cache/eif/downloads" \
    EIF_TOOLS="$repo/.cache/tools" \
    EIF_ATTEST="$repo/target/debug/nitrosync-attest" \
    || die "the build in $dir failed"
  times+=("$(( $(date +%s) - t0 ))")
done

echo
echo "eif-verify: ${dirs[0]#"$repo"/} (${times[0]}s) against ${dirs[1]#"$repo"/} (${times[1]}s):"
python3 "$repo/eif/measurements.py" --eif-sha256 \
  --compare "${dirs[0]}/out/eif/measurements.json" "${dirs[1]}/out/eif/measurements.json" \
  || die "the two builds differ: the image is not reproducible"
echo "eif-verify: the two builds agree (PCR0, PCR1, PCR2 and the EIF's SHA-256), in $(( $(date +%s) - start ))s"
