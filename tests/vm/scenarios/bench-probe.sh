# backends: zfs lvm
# on-demand
# Where the time of `sidus snapshot` and `sidus clone` goes: each storage
# command sidus runs on those paths, timed alone (median of $BENCH_RUNS), next
# to the sidus command itself and to a sidus command that runs none
# (`sidus --version`: process start). Prints "BENCH <backend> probe ...".

RUNS=${BENCH_RUNS:-9}
setup_store
sidus create t --from-dir /usr/bin >/dev/null
w=$(sidus path t)
base=$(sidus snapshot t -m base)
now_ns() { date +%s%N; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
probe() {  # LABEL FN: FN gets the run number
    local label=$1 t='' i t0
    for ((i = 1; i <= RUNS; i++)); do
        t0=$(now_ns); "$2" "$i" >/dev/null 2>&1 || true
        t+=" $((($(now_ns) - t0) / 1000000))"
    done
    echo "BENCH $SIDUS_TEST_BACKEND probe $label: $(median <<<"$t") ms"
}

p_version() { sidus --version; }
p_list_trees() { sidus --json list; }
p_snapshot() { echo "$1" >"$w/f"; sidus snapshot t -m "p$1"; }
p_clone() { sidus clone "t@$base" "pc$1"; }
p_help() { sidus snapshot --help; }
probe "sidus --version" p_version
probe "sidus snapshot --help" p_help
probe "sidus list --json" p_list_trees
probe "sidus snapshot" p_snapshot
probe "sidus clone" p_clone
case $SIDUS_TEST_BACKEND in
zfs)
    T=$ZFS_DATASET/trees/t
    p_zsnap() { echo "$1" >"$w/f"; zfs snapshot "$T@z$1"; }
    p_zsnap_props() {
        echo "$1" >"$w/f"
        zfs snapshot -o sidus:tree=t -o sidus:created=2026-01-01T00:00:00Z -o sidus:kind=manual \
            -o sidus:message=m -o sidus:parent=x -o sidus:user=root -o sidus:command=c "$T@zp$1"
    }
    p_zlist() { zfs list -H -p -t filesystem -r -d 1 -o name,sidus:tree,sidus:origin,mountpoint "$ZFS_DATASET/trees"; }
    p_zclone() { zfs clone "$T@$base" "$ZFS_DATASET/trees/zc$1"; }
    p_zclone_props() { zfs clone -o sidus:tree=x -o sidus:origin=t@x "$T@$base" "$ZFS_DATASET/trees/zcp$1"; }
    p_zget() { zfs get -H -p -o value mountpoint "$T"; }
    probe "zfs snapshot" p_zsnap
    probe "zfs snapshot -o x7" p_zsnap_props
    probe "zfs list (trees)" p_zlist
    probe "zfs get" p_zget
    probe "zfs clone" p_zclone
    probe "zfs clone -o x2" p_zclone_props
    echo x >"$w/f"; d1=$(sidus snapshot t); echo y >"$w/f"; d2=$(sidus snapshot t)
    p_zdiff() { zfs diff -H -F "$T@$d1" "$T@$d2"; }
    p_sdiff() { sidus diff "t@$d1" "t@$d2"; }
    echo "BENCH zfs probe zfs diff lines: $(p_zdiff | wc -l)"
    probe "zfs diff (one file changed)" p_zdiff
    probe "sidus diff (one file changed)" p_sdiff
    sidus -v diff "t@$d1" "t@$d2" 2>&1 | while IFS= read -r l; do echo "BENCH zfs probe $(date +%s.%N) $l"; done
    ;;
lvm)
    p_lvs() { lvs --reportformat json -o lv_name,lv_tags,pool_lv,lv_kernel_major,lv_kernel_minor "$VG"; }
    p_dm() { dmsetup status "$VG-$THINPOOL-tpool"; }
    p_lvcreate() { echo "$1" >"$w/f"; lvcreate -q -y -n "p.s$1" -s -k y -p r "$VG/sidus.t.t"; }
    p_lvclone() { lvcreate -q -y -n "p.c$1" -s -k n -p rw "$VG/sidus.t.t"; }
    p_mount() { mkdir -p "/mnt/p$1"; mount -o noinit_itable,discard "/dev/$VG/p.c$1" "/mnt/p$1"; }
    probe "lvs" p_lvs
    probe "dmsetup status" p_dm
    probe "lvcreate -s (snapshot)" p_lvcreate
    probe "lvcreate -s (clone)" p_lvclone
    probe "mount" p_mount
    ;;
esac
