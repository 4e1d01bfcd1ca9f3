# backends: zfs lvm
# on-demand
# Prints the storage tools' real failures (exit code and stderr) and `zfs diff`
# output, for the fixtures the backends' error classifiers and parsers are
# tested on (backends/tests/fixtures/). Needs no sidus. Run it by name with
# SIDUS_VM_CONSOLE=FILE and cut the samples out of FILE: each is framed by
#   CAPTURE-BEGIN <name> <exit code>   ...stderr...   CAPTURE-END <name>
# (diff outputs are stdout, framed the same way).

# capture NAME CMD...: runs CMD (which must fail unless NAME ends in .out),
# prints its exit code and stderr (stdout for .out) between markers.
capture() {
    local name=$1 rc=0 out err
    shift
    out=$(mktemp); err=$(mktemp)
    "$@" >"$out" 2>"$err" || rc=$?
    echo "CAPTURE-BEGIN $name $rc"
    if [[ $name == *.out ]]; then cat "$out"; else cat "$err"; fi
    echo "CAPTURE-END $name"
    rm -f "$out" "$err"
}

versions() {
    echo "CAPTURE-BEGIN versions 0"
    uname -r
    case $SIDUS_TEST_BACKEND in
    zfs) zfs version 2>&1 ;;
    lvm) lvm version 2>&1 | head -n 3; mount --version ;;
    esac
    echo "CAPTURE-END versions"
}

case $SIDUS_TEST_BACKEND in
zfs)
    versions
    zpool create -f -O mountpoint=none sidustest "$(disk zfsdisk)"
    D=sidustest/cap
    zfs create -o mountpoint=/cap $D
    zfs create $D/t
    echo a >/cap/t/f
    zfs snapshot $D/t@s1
    capture zfs-list-missing zfs list -H -o name $D/nope
    capture zfs-snapshot-missing zfs snapshot $D/nope@s1
    capture zfs-snapshot-exists zfs snapshot $D/t@s1
    capture zfs-clone-exists zfs clone $D/t@s1 $D/t
    capture zfs-clone-missing-origin zfs clone $D/t@nope $D/c9
    capture zfs-rename-exists zfs rename $D/t $D
    zfs clone $D/t@s1 $D/c1
    capture zfs-destroy-dependent-clones zfs destroy $D/t@s1
    capture zfs-destroy-missing zfs destroy $D/t@nope
    zfs hold sidus-pin $D/t@s1
    capture zfs-hold-exists zfs hold sidus-pin $D/t@s1
    zfs destroy $D/c1
    capture zfs-destroy-held zfs destroy $D/t@s1
    capture zfs-destroy-r-held zfs destroy -r $D/t
    zfs release sidus-pin $D/t@s1
    capture zfs-release-missing zfs release sidus-pin $D/t@s1
    capture zfs-hold-missing-snapshot zfs hold sidus-pin $D/t@nope
    # A process sitting in a dataset.
    (cd /cap/t && sleep 30) &
    busy=$!
    sleep 1
    capture zfs-destroy-busy zfs destroy -r $D/t
    capture zfs-rename-busy zfs rename $D/t $D/t2
    capture umount-busy umount /cap/t
    kill $busy; wait $busy 2>/dev/null || true

    # zfs diff: every kind of change, awkward names, a renamed directory,
    # hard links.
    w=/cap/t
    mkdir -p $w/etc/sub $w/dir $w/gone/deep
    echo x >$w/etc/motd; echo x >$w/etc/perm; echo x >$w/gone/deep/f
    echo x >$w/etc/sub/keep; echo x >$w/linked
    ln -s /usr/bin/python3.11 $w/py
    zfs snapshot $D/t@d1
    echo y >$w/etc/motd
    chmod 600 $w/etc/perm
    ln -sfn /usr/bin/python3.12 $w/py
    echo n >"$w/with space"
    echo n >"$w/tab	here"
    echo n >"$w/new
line"
    echo n >"$w/ünï"
    echo n >"$w/back\\slash"
    mkfifo $w/fifo
    mv $w/etc/sub $w/moved
    echo z >$w/moved/keep
    rm -rf $w/gone
    ln $w/linked $w/hardlink
    mkdir -p $w/added/dir; echo n >$w/added/dir/f
    zfs snapshot $D/t@d2
    echo w >$w/working
    capture zfs-diff-snapshots.out zfs diff -H -F $D/t@d1 $D/t@d2
    capture zfs-diff-snapshots-h.out zfs diff -H -F -h $D/t@d1 $D/t@d2
    capture zfs-diff-working.out zfs diff -H -F $D/t@d2 $D/t
    capture zfs-diff-not-earlier zfs diff -H -F $D/t@d2 $D/t@d1
    zfs clone $D/t@d1 $D/c2
    echo c >/cap/c2/cloned
    zfs snapshot $D/c2@x
    capture zfs-diff-clone-origin.out zfs diff -H -F $D/t@d1 $D/c2@x
    capture zfs-diff-other-fs zfs diff -H -F $D/t@d2 $D/c2@x
    zfs create -o mountpoint=none $D/unmounted
    zfs snapshot $D/unmounted@u1
    zfs snapshot $D/unmounted@u2
    capture zfs-diff-unmounted zfs diff -H -F $D/unmounted@u1 $D/unmounted@u2

    # A full pool: a small one on a file, so filling it is quick.
    truncate -s 128M /tmp/full.img
    zpool create -f -O mountpoint=/full -O compression=off capfull /tmp/full.img
    zfs create capfull/t
    dd if=/dev/urandom of=/full/t/big bs=1M status=none 2>/dev/null || true
    sync
    capture zfs-snapshot-full zfs snapshot capfull/t@full
    capture zfs-create-full zfs create capfull/t2
    zpool destroy -f capfull
    ;;
lvm)
    versions
    d=$(disk lvmdisk)
    pvcreate -ff -y "$d" >/dev/null
    vgcreate capvg "$d" >/dev/null
    lvcreate -q -y --type thin-pool -L 200M -n pool capvg >/dev/null
    lvcreate -q -y -n t -V 1G -T capvg/pool >/dev/null
    mkfs.ext4 -q /dev/capvg/t
    capture lvs-missing-vg lvs --reportformat json -o lv_name nosuchvg
    capture lvs-missing-lv lvs --reportformat json -o lv_name capvg/nope
    capture lvcreate-exists lvcreate -q -y -n t -V 1G -T capvg/pool
    capture lvcreate-snapshot-exists lvcreate -q -y -n t -s -k y -p r capvg/t
    capture lvcreate-snapshot-missing-origin lvcreate -q -y -n s1 -s -k y -p r capvg/nope
    capture lvcreate-missing-pool lvcreate -q -y -n x -V 1G -T capvg/nopool
    capture lvremove-missing lvremove -q -y capvg/nope
    lvcreate -q -y -n u -V 1G -T capvg/pool >/dev/null
    capture lvrename-exists lvrename -q capvg u t
    capture lvrename-missing lvrename -q capvg nope other
    mkdir -p /mnt/t
    mount /dev/capvg/t /mnt/t
    capture lvremove-mounted lvremove -q -y capvg/t
    capture lvrename-mounted.out lvrename -q capvg t t2
    lvrename -q capvg t2 t 2>/dev/null || true
    (cd /mnt/t && sleep 30) &
    busy=$!
    sleep 1
    capture umount-busy umount /mnt/t
    kill $busy; wait $busy 2>/dev/null || true
    capture lvchange-missing lvchange -q -ay -K capvg/nope
    # A full pool: fill it through the mounted tree, then ask for more.
    dd if=/dev/urandom of=/mnt/t/big bs=1M count=400 status=none 2>/dev/null || true
    sync || true
    capture lvcreate-snapshot-full lvcreate -q -y -n s2 -s -k y -p r capvg/t
    capture lvcreate-thin-full lvcreate -q -y -n y -V 1G -T capvg/pool
    umount -l /mnt/t || true
    vgremove -ff -y capvg >/dev/null 2>&1 || true
    ;;
esac
