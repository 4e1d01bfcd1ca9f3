#!/usr/bin/env bash
# Benchmarks of the history commands on a loop-backed btrfs store. Root only.
# Targets: `sidus prune --dry-run` on 10,000 snapshots < 1 s; `sidus diff
# --packages` between two trees with realistic dpkg status files < 1 s. Also
# times a file diff between two snapshots of a tree made of /usr/bin and
# /usr/share/doc of this host, cold cache.
#
# The 10,000 snapshots are made with raw `btrfs subvolume snapshot -r` plus the
# JSON sidecar the btrfs backend reads (backends/src/btrfs.rs), one every 37
# minutes going back from 2026-11-25, so the retention rules see ~257 days of
# history. The status files are this host's /var/lib/dpkg/status (or, without
# one, a synthetic one) and a copy with packages removed, installed, upgraded
# and downgraded; a second pair is the same grown to ~4,000 packages, the size
# of a well-filled HPC node image.
# Usage: bench/history.sh [SNAPSHOTS] (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
cargo build --release --quiet
S=${CARGO_TARGET_DIR:-$PWD/target}/release/sidus
work=$(mktemp -d /var/tmp/sidus-bench-history.XXXXXX)
export SIDUS_CONFIG=$work/sidus.toml
cleanup() { umount "$work/store" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
$S init --loop "$work/store.img" --path "$work/store" --size 8G >/dev/null
mkdir -p "$work/src/etc" && echo bench >"$work/src/etc/motd"
$S create t --from-dir "$work/src" >/dev/null
trees=$work/store/trees snaps=$work/store/snapshots/t

# best wall time in ms of $runs runs of "$@"
best_ms() {
    local best=999999999 start end t
    for ((i = 0; i < runs; i++)); do
        start=$(date +%s%N)
        "$@" >/dev/null
        end=$(date +%s%N)
        t=$(((end - start) / 1000))
        ((t < best)) && best=$t
    done
    awk -v u="$best" 'BEGIN { printf "%.1f ms", u / 1000 }'
}

echo "(making $count snapshots with raw btrfs...)" >&2
start=$(date +%s)
python3 - "$count" >"$work/ids" <<'EOF'
import sys, datetime
end = datetime.datetime(2026, 11, 25, tzinfo=datetime.timezone.utc)
n = int(sys.argv[1])
for i in range(n):
    t = end - datetime.timedelta(minutes=37 * (n - i))
    print(t.strftime("%Y%m%dT%H%M%SZ"), t.strftime("%Y-%m-%dT%H:%M:%SZ"))
EOF
while read -r id created; do
    printf '{"tree":"t","id":"%s","created":"%s","kind":"manual","message":"bench","parent":null,"user":"root","command":"bench"}' \
        "$id" "$created" >"$snaps/$id.json"
    echo "$id"
done <"$work/ids" | xargs -P 2 -I{} btrfs -q subvolume snapshot -r "$trees/t" "$snaps/{}" >/dev/null
echo "(made in $(($(date +%s) - start)) s)" >&2
have=$($S snapshots t --json | grep -c '"id"')

# Protections present, as on a real store: a pin, a clone, a published snapshot.
mid=$(sed -n "$((count / 2))p" "$work/ids" | cut -d' ' -f1)
old=$(sed -n "$((count / 3))p" "$work/ids" | cut -d' ' -f1)
$S pin "t@$mid" --name paper >/dev/null
$S clone "t@$old" replay >/dev/null
mkdir -p "$work/store/.sidus/publish"
printf '{"trees":{"t":{"current":"%s","previous":[],"exported":["%s"]}}}\n' "$mid" "$mid" \
    >"$work/store/.sidus/publish/state.json"

policy=(--keep-last 10 --keep-hourly 24 --keep-daily 30 --keep-weekly 8 --keep-monthly 12)
runs=5
printf '%-58s %s\n' "sidus prune --dry-run ($have snapshots, table)" "$(best_ms $S prune t "${policy[@]}" --dry-run)"
printf '%-58s %s\n' "sidus prune --dry-run ($have snapshots, --json)" "$(best_ms $S prune t "${policy[@]}" --dry-run --json)"
printf '%-58s %s\n' "sidus snapshots --json ($have snapshots, for scale)" "$(best_ms $S snapshots t --json)"
$S prune t "${policy[@]}" --dry-run | tail -1

# With btrfs quotas on, prune also reads every snapshot's exclusive space.
btrfs quota enable "$work/store"
btrfs quota rescan -w "$work/store" >/dev/null
printf '%-58s %s\n' "sidus prune --dry-run ($have snapshots, quotas on)" "$(best_ms $S prune t "${policy[@]}" --dry-run)"
printf '%-58s %s\n' "sidus du ($have snapshots, quotas on)" "$(best_ms $S du t)"
btrfs quota disable "$work/store"
runs=1
printf '%-58s %s\n' "sidus prune (deleting down to the kept ones)" "$(best_ms $S prune t "${policy[@]}")"
$S snapshots t --json | grep -c '"id"' | sed 's/^/snapshots left: /'

# dpkg status pairs: the host's (or a synthetic one) and a modified copy.
status=$work/status
if [[ -s /var/lib/dpkg/status ]]; then
    cp /var/lib/dpkg/status "$status"
else
    for i in $(seq 1 1500); do
        printf 'Package: pkg%d\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.%d-1\nDescription: synthetic\n long text\n\n' "$i" "$i"
    done >"$status"
fi
python3 - "$status" "$work" <<'EOF'
import re, sys
src, work = sys.argv[1], sys.argv[2]
stanzas = [s for s in open(src, encoding="utf-8", errors="replace").read().split("\n\n") if s.strip()]

def bump(s, suffix):
    return re.sub(r"(?m)^Version: (.*)$", lambda m: "Version: " + m.group(1) + suffix, s, count=1)

def modified(st):
    out = []
    for i, s in enumerate(st):
        if i % 50 == 7:
            continue                       # removed
        if i % 10 == 3:
            s = bump(s, "+deb12u99")       # upgraded
        elif i % 97 == 5:
            s = bump(s, "~old1")           # downgraded
        out.append(s)
    for i in range(40):                    # installed
        out.append(f"Package: bench-new{i}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{i}-1\nDescription: new\n")
    return out

def big(st, n=4000):
    out, k = list(st), 0
    while len(out) < n:
        s = st[k % len(st)]
        out.append(re.sub(r"(?m)^Package: (.*)$", lambda m: f"Package: {m.group(1)}-x{k}", s, count=1))
        k += 1
    return out

for name, st in (("a", stanzas), ("b", modified(stanzas)), ("big-a", big(stanzas)), ("big-b", modified(big(stanzas)))):
    open(f"{work}/status.{name}", "w").write("\n\n".join(st) + "\n")
EOF
for t in a b big-a big-b; do
    mkdir -p "$work/tree-$t/var/lib/dpkg"
    cp "$work/status.$t" "$work/tree-$t/var/lib/dpkg/status"
    $S create "deb-$t" --from-dir "$work/tree-$t" >/dev/null
    $S snapshot "deb-$t" >/dev/null
done
runs=10
for pair in "a b" "big-a big-b"; do
    set -- $pair
    n=$(grep -c '^Package:' "$work/status.$1")
    printf '%-58s %s\n' "sidus diff --packages ($n packages, snapshots)" \
        "$(best_ms $S diff "deb-$1@latest" "deb-$2@latest" --packages)"
    printf '%-58s %s\n' "sidus diff --packages ($n packages, --json)" \
        "$(best_ms $S diff "deb-$1@latest" "deb-$2@latest" --packages --json)"
done
$S diff deb-a@latest deb-b@latest --packages | tail -1

# A file diff between two snapshots of a sizeable tree: unchanged files share
# their extents, so only the changed ones are read.
mkdir -p "$work/big/usr"
cp -a /usr/bin /usr/share/doc "$work/big/usr/" 2>/dev/null || true
$S create big --from-dir "$work/big" >/dev/null
$S snapshot big >/dev/null
w=$($S path big)
for f in $(find "$w/usr/bin" -type f -size +100k | head -5); do
    printf 'X' | dd of="$f" bs=1 seek=50000 conv=notrunc status=none
done
$S snapshot big >/dev/null
files=$(find "$work/big" | wc -l) size=$(du -sh "$work/big" | cut -f1)
sync
echo 3 >/proc/sys/vm/drop_caches
runs=1
printf '%-58s %s\n' "sidus diff of 2 snapshots ($files files, $size, cold cache)" "$(best_ms $S diff big@latest "big@$($S snapshots big --json | grep -m1 '"id"' | cut -d'"' -f4)")"
runs=5
printf '%-58s %s\n' "sidus diff of 2 snapshots ($files files, $size, warm)" "$(best_ms $S diff big@latest "big@$($S snapshots big --json | grep -m1 '"id"' | cut -d'"' -f4)")"
