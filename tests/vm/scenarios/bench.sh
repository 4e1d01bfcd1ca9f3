# backends: zfs
# on-demand
# Run it by name (tests/vm/run bench); prints figures, asserts nothing about speed.
# sidus snapshot and clone side by side with the raw storage commands they
# wrap (LVM: bench-lvm.sh), on a tree of a few thousand files, in the VM (TCG: absolute times are
# slow, the ratios are what matters).

setup_store
src=/tmp/bench-src
rm -rf "$src"; mkdir -p "$src"; cp -a /usr/share /usr/lib/python3* "$src/" 2>/dev/null || cp -a /usr/share "$src/"
sidus create t --from-dir "$src" >/dev/null
base=$(sidus snapshot t)

runs=10
ms_now() { date +%s%N; }
mean() {  # mean ms of "$@" over $runs runs
    local s e i
    s=$(ms_now)
    for ((i = 0; i < runs; i++)); do "$@" >/dev/null; done
    e=$(ms_now)
    echo $(((e - s) / runs / 1000000))
}
n=0
case $SIDUS_TEST_BACKEND in
zfs)
    raw_snap() { zfs snapshot "$ZFS_DATASET/trees/t@raw$((n++))"; }
    raw_clone() { zfs clone "$ZFS_DATASET/trees/t@$base" "$ZFS_DATASET/rawclone$((n++))"; }
    ;;
esac
c=0
sidus_clone() { sidus clone "t@$base" "c$((c++))"; }
s=$(mean sidus snapshot t); r=$(mean raw_snap)
echo "BENCH $SIDUS_TEST_BACKEND snapshot: sidus ${s} ms, raw ${r} ms, ratio $(awk -v a="$s" -v b="$r" 'BEGIN { printf "%.2f", a / b }')"
s=$(mean sidus_clone); r=$(mean raw_clone)
echo "BENCH $SIDUS_TEST_BACKEND clone: sidus ${s} ms, raw ${r} ms, ratio $(awk -v a="$s" -v b="$r" 'BEGIN { printf "%.2f", a / b }')"
teardown_store
