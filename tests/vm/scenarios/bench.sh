# backends: zfs lvm
# on-demand
# Run it by name (tests/vm/run bench); prints figures, asserts nothing about speed.
# sidus snapshot, clone and rollback side by side with the raw storage
# commands they wrap, on a tree of a few thousand files, in the VM (TCG:
# absolute times are slow, the ratios are what matters). Each sidus run is
# followed by its raw counterpart on an identical raw dataset or LV, so both
# see the same state of the pool; the median of $BENCH_RUNS pairs is shown.
#   BENCH <backend> <op>: sidus N ms, raw N ms, ratio R (raw: what was run)

# The whole bench takes ~10 minutes under TCG on a 2-core host: run it with
# SIDUS_VM_SCENARIO_TIMEOUT=1800.
RUNS=${BENCH_RUNS:-7}
setup_store
src=/tmp/bench-src
rm -rf "$src"; mkdir -p "$src"; cp -a /usr/share "$src/"
sidus create t --from-dir "$src" >/dev/null
w=$(sidus path t)
echo 0 >"$w/bench-file"
base=$(sidus snapshot t -m base)

# The same content outside sidus, for the raw commands.
case $SIDUS_TEST_BACKEND in
zfs)
    # Laid out as sidus lays out its store: mountpoints inherited, so a
    # renamed dataset is remounted as sidus's are.
    RR=$ZFS_DATASET/rawroot
    zfs create -o mountpoint=/mnt/rawroot "$RR"
    zfs create "$RR/trees"; zfs create "$RR/history"; zfs create "$RR/swap"
    R=$RR/trees/raw
    zfs create "$R"
    raw_dir=/mnt/rawroot/trees/raw
    cp -a "$src/." "$raw_dir/"
    echo 0 >"$raw_dir/bench-file"
    zfs snapshot "$R@base"
    ;;
lvm)
    R=$VG/rawbase
    lvcreate -q -y -n rawbase -V 20G -T "$VG/$THINPOOL" >/dev/null
    mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "/dev/$R"
    raw_dir=/mnt/raw
    mkdir -p "$raw_dir"
    mount -o noinit_itable,discard "/dev/$R" "$raw_dir"
    cp -a "$src/." "$raw_dir/"
    echo 0 >"$raw_dir/bench-file"
    sync
    lvcreate -q -y -s -k y -p r -n raw.base "$R" >/dev/null
    ;;
esac
sync
echo "bench: tree of $(find "$w" | wc -l) entries ($(du -sh "$w" | cut -f1))"

now_ns() { date +%s%N; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# pair LABEL RAW_DESC SIDUS_FN RAW_FN [N]: runs SIDUS_FN then RAW_FN, N
# (default $RUNS) times, each given the run number; prints the medians and
# their ratio.
pair() {
    local label=$1 desc=$2 s='' r='' i t0 t1 t2 n=${5:-$RUNS}
    for ((i = 1; i <= n; i++)); do
        t0=$(now_ns); "$3" "$i" >/dev/null
        t1=$(now_ns); "$4" "$i" >/dev/null
        t2=$(now_ns)
        s+=" $(((t1 - t0) / 1000000))" r+=" $(((t2 - t1) / 1000000))"
    done
    s=$(median <<<"$s"); r=$(median <<<"$r")
    echo "BENCH $SIDUS_TEST_BACKEND $label: sidus $s ms, raw $r ms, ratio $(awk -v a="$s" -v b="$r" 'BEGIN { printf "%.2f", a / b }') (raw: $desc)"
}

# Each snapshot has something to hold: one file changed on both sides.
s_snap() { echo "$1" >"$w/bench-file"; sidus snapshot t -m "bench $1"; }
s_clone() { sidus clone "t@$base" "c$1"; }
s_rollback() { echo "r$1" >"$w/bench-file"; sidus rollback "t@$base"; }
case $SIDUS_TEST_BACKEND in
zfs)
    r_snap() { echo "$1" >"$raw_dir/bench-file"; zfs snapshot "$R@s$1"; }
    r_clone() { zfs clone "$R@base" "$RR/trees/c$1"; }
    # What sidus rollback does: a safety snapshot, a clone of the target
    # swapped in by two renames, then promoted.
    r_rollback() {
        echo "r$1" >"$raw_dir/bench-file"
        zfs snapshot "$R@safe$1"
        zfs clone "$R@base" "$RR/swap/raw"
        zfs rename "$R" "$RR/history/h$1"
        zfs rename "$RR/swap/raw" "$R"
        zfs promote "$R"
    }
    r_rollback_native() { echo "n$1" >"$raw_dir/bench-file"; zfs snapshot "$R@n$1"; zfs rollback -r "$R@base"; }
    snap_desc="zfs snapshot"
    clone_desc="zfs clone"
    rollback_desc="zfs snapshot, clone, rename x2, promote"
    ;;
lvm)
    r_snap() {
        echo "$1" >"$raw_dir/bench-file"
        lvcreate -q -y -s -k y -p r -n "raw.s$1" "$R"
    }
    r_clone() {
        lvcreate -q -y -s -k n -p rw -n "raw.c$1" "$VG/raw.base"
        mkdir -p "/mnt/raw.c$1"
        mount -o noinit_itable,discard "/dev/$VG/raw.c$1" "/mnt/raw.c$1"
    }
    # What sidus rollback does: a safety snapshot, a copy of the target,
    # unmount, two renames, mount, remove the old LV.
    r_rollback() {
        echo "r$1" >"$raw_dir/bench-file"
        lvcreate -q -y -s -k y -p r -n "raw.safe$1" "$R"
        lvcreate -q -y -s -k n -p rw -n raw.in "$VG/raw.base"
        umount "$raw_dir"
        lvrename -q "$VG" rawbase raw.out
        lvrename -q "$VG" raw.in rawbase
        mount -o noinit_itable,discard "/dev/$R" "$raw_dir"
        lvremove -q -y "$VG/raw.out"
    }
    snap_desc="lvcreate -s"
    clone_desc="lvcreate -s + mount"
    rollback_desc="lvcreate -s x2, umount, lvrename x2, mount, lvremove"
    ;;
esac

pair snapshot "$snap_desc" s_snap r_snap
# Two snapshots of the whole tree that differ in one file.
p_base=$(sidus path "t@$base") p_latest=$(sidus path t@latest)
s_diff() { sidus diff "t@$base" "t@latest" >/dev/null; }
r_diff() { diff -rq "$p_base" "$p_latest" >/dev/null || true; }
pair "diff of two snapshots" "diff -rq of the two snapshot directories" s_diff r_diff 3
pair clone "$clone_desc" s_clone r_clone
pair rollback "$rollback_desc" s_rollback r_rollback 5
if [[ $SIDUS_TEST_BACKEND == zfs ]]; then
    s_rollback2() { echo "q$1" >"$w/bench-file"; sidus rollback "t@$base"; }
    pair "rollback vs zfs rollback" "zfs snapshot + zfs rollback -r, which destroys newer snapshots" \
        s_rollback2 r_rollback_native 3
fi
s_list() { sidus --json snapshots t; }
case $SIDUS_TEST_BACKEND in
zfs) r_list() { zfs list -H -p -t snapshot -r -o name,sidus:tree "$ZFS_DATASET"; } ;;
lvm) r_list() { lvs --reportformat json -o lv_name,lv_tags "$VG"; } ;;
esac
pair "snapshots --json ($(sidus --json snapshots t | jq length) snapshots)" "one list query" s_list r_list 5

rm -rf "$src"
# (vm_reset tears the store down.)
