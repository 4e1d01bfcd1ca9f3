#!/usr/bin/env bash
# Benchmarks of content manifests, export and SBOM on a loop-backed btrfs
# store, through sidus commands, beside the raw tools over the same files.
# Root only. Targets (issue 13):
#   full manifest of a 1 GB tree in ~30,000 files: >= 400 MB/s, warm cache
#   manifest of a child snapshot with 1% of files changed: < 10% of the full time
#   export of the 1 GB tree to squashfs: < 60 s
#   sbom of 3,000 packages: < 1 s
# The tree is made here: 300 directories of 100 files, sizes from 1 KiB to
# 64 KiB plus 1% of 1.5 MiB files, half random and half text (compressible
# about 2:1, like system trees), copied in with `sidus create --from-dir`.
# Usage: bench/manifest.sh [FILES] (default 30000)
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-30000}
cargo build --release --quiet
S=${CARGO_TARGET_DIR:-$PWD/target}/release/sidus
work=$(mktemp -d /var/tmp/sidus-bench-manifest.XXXXXX)
export SIDUS_CONFIG=$work/sidus.toml
cleanup() { umount "$work/store" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
$S init --loop "$work/store.img" --path "$work/store" --size 8G >/dev/null

# seconds (3 decimals) of one run of "$@"
secs() {
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    awk -v n="$((end - start))" 'BEGIN { printf "%.3f", n / 1e9 }'
}
# best of $runs runs of "$@", each after `before` (a function name, or :)
best() {
    local before=$1 b=999999 t
    shift
    for ((r = 0; r < runs; r++)); do
        "$before"
        t=$(secs "$@")
        b=$(awk -v a="$b" -v c="$t" 'BEGIN { print (c < a) ? c : a }')
    done
    echo "$b"
}
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s", b / s / 1e6 }'; }
row() { printf '%-44s %s\n' "$1" "$2"; }

echo "(making $files files...)" >&2
python3 - "$work/src" "$files" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(13)
text = b"".join(b"line %d of a configuration file, with words in it\n" % i for i in range(40000))
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    size = 1536 * 1024 if i % 100 == 50 else int(1024 * 64 ** rng.random())
    half = size // 2
    off = rng.randrange(0, len(text) - half)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(size - half) + text[off:off + half])
EOF
bytes=$(du -sb "$work/src" | cut -f1)
nfiles=$(find "$work/src" -type f | wc -l)
gb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }')
t=$(secs $S create bench --from-dir "$work/src")
row "sidus create --from-dir ($nfiles files, $gb)" "$t s"
p=$($S snapshot bench -m parent)
snap=$($S path "bench@$p")
kept=$work/store/.sidus/manifests/bench

# Warm the snapshot's pages (a snapshot's files are other inodes than the
# working tree's, so the copy did not warm them), then compare.
find "$snap" -type f -print0 | xargs -0 cat >/dev/null
runs=3
forget_p() { rm -f "$kept/$p"; }
full=$(best forget_p $S manifest "bench@$p")
raw_b3=$(best : sh -c "cd '$snap' && find . -type f -print0 | xargs -0 -n 500 -P 2 b3sum --num-threads 1")
raw_sha=$(best : sh -c "cd '$snap' && find . -type f -print0 | xargs -0 -n 500 -P 2 sha256sum")
row "full manifest ($gb, warm)" "sidus manifest $full s ($(rate "$bytes" "$full"))"
row "" "b3sum -P2 $raw_b3 s ($(rate "$bytes" "$raw_b3")), sha256sum -P2 $raw_sha s ($(rate "$bytes" "$raw_sha"))"
$S manifest "bench@$p" >/dev/null

# A child: 1% of the files get 4 KiB rewritten in place.
w=$($S path bench)
find "$w" -type f | sort | awk 'NR % 100 == 7' >"$work/changed"
while read -r f; do
    head -c 4096 /dev/urandom | dd of="$f" bs=4096 count=1 conv=notrunc status=none
done <"$work/changed"
c=$($S snapshot bench -m child)
find "$($S path "bench@$c")" -type f -print0 | xargs -0 cat >/dev/null
forget_c() { rm -f "$kept/$c"; }
child=$(best forget_c $S manifest "bench@$c")
pct=$(awk -v a="$child" -v b="$full" 'BEGIN { printf "%.1f%%", 100 * a / b }')
row "child manifest, $(wc -l <"$work/changed") files changed (1%)" "$child s ($pct of the full time)"
forget_c
how=$($S manifest "bench@$c" --json | python3 -c 'import json,sys; c=json.load(sys.stdin)["computed"]; print("hashed %d, reused by stamp %d, by shared extents %d, unchanged as storage says %d" % (c["hashed_files"], c["reused_by_stamp"], c["reused_by_extents"], c.get("reused_unchanged", 0)))')
row "" "($how)"
# Later snapshots whose files are older than the 2 s trust margin: stamps alone.
sleep 3
g=$($S snapshot bench -m grandchild)
$S manifest "bench@$g" >/dev/null
while read -r f; do
    head -c 4096 /dev/urandom | dd of="$f" bs=4096 count=1 conv=notrunc status=none
done <"$work/changed"
h=$($S snapshot bench -m great-grandchild)
find "$($S path "bench@$h")" -type f -print0 | xargs -0 cat >/dev/null
forget_h() { rm -f "$kept/$h"; }
older=$(best forget_h $S manifest "bench@$h")
pct=$(awk -v a="$older" -v b="$full" 'BEGIN { printf "%.1f%%", 100 * a / b }')
row "child manifest, 1% changed, older stamps" "$older s ($pct of the full time)"

# Exports: squashfs beside mksquashfs with the same options, and tar.
runs=1
sq=$(secs $S export "bench@$p" -o "$work/bench.sqfs" --format squashfs)
raw_sq=$(secs mksquashfs "$snap" "$work/raw.sqfs" -noappend -quiet -no-progress -comp zstd -Xcompression-level 6)
row "export --format squashfs ($gb)" "sidus $sq s ($(du -h "$work/bench.sqfs" | cut -f1)), mksquashfs $raw_sq s"
rm -f "$work/bench.sqfs" "$work/raw.sqfs"
tar_t=$(secs $S export "bench@$p" -o "$work/bench.tar")
raw_tar=$(secs tar -C "$snap" --sort=name --format=posix --numeric-owner --xattrs -cf "$work/raw.tar" .)
row "export --format tar ($gb)" "sidus $tar_t s, GNU tar $raw_tar s"
rm -f "$work/raw.tar"
imp=$(secs $S import "$work/bench.tar" --as imported)
row "import of the tar, verified" "sidus $imp s"
rm -f "$work/bench.tar"

# SBOM of 3,000 packages: a generated dpkg status in a small tree.
mkdir -p "$work/pkgs/var/lib/dpkg" "$work/pkgs/etc"
printf 'ID=debian\nVERSION_CODENAME=bookworm\n' >"$work/pkgs/etc/os-release"
python3 - "$work/pkgs/var/lib/dpkg/status" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        src = "src%d" % (i // 3)
        f.write("Package: pkg%d\nStatus: install ok installed\nPriority: optional\nSection: libs\n"
                "Installed-Size: %d\nMaintainer: Team %d <team%d@example.org>\nArchitecture: amd64\n"
                "Multi-Arch: same\nSource: %s (1:%d.0-1)\nVersion: 1:%d.0-1+b1\n"
                "Depends: libc6 (>= 2.36)\nDescription: package %d\n a longer description\n .\n of it\n"
                "Homepage: https://example.org/%d\n\n" % (i, i, i % 40, i % 40, src, i, i, i, i))
EOF
$S create pkgs --from-dir "$work/pkgs" >/dev/null
$S snapshot pkgs >/dev/null
$S sbom pkgs@latest >/dev/null
runs=5
spdx=$(best : $S sbom pkgs@latest)
cdx=$(best : $S sbom pkgs@latest --format cyclonedx-json)
row "sbom, 3000 packages" "spdx-json $spdx s, cyclonedx-json $cdx s"
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
