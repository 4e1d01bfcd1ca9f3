# backends: zfs lvm
# Proves the VM image without sidus: the storage primitives each backend is
# built on (ZFS snapshot/clone, LVM thin pool/LV/snapshot) and an NFSv3 export
# of the result, read back over loopback.

case $SIDUS_TEST_BACKEND in
zfs)
    step "zpool, dataset, snapshot, clone"
    zpool create -f -O mountpoint=none "$ZPOOL" "$(disk zfsdisk)"
    zfs create -o mountpoint=/srv/smoke "$ZPOOL/fs"
    echo hello >/srv/smoke/file
    zfs snapshot "$ZPOOL/fs@one"
    echo changed >/srv/smoke/file
    zfs clone -o mountpoint=/srv/smoke-clone "$ZPOOL/fs@one" "$ZPOOL/clone"
    assert_eq "$(cat /srv/smoke/file)" changed "working dataset"
    assert_eq "$(cat /srv/smoke-clone/file)" hello "clone of @one"
    assert_eq "$(cat /srv/smoke/.zfs/snapshot/one/file)" hello ".zfs snapshot view"
    assert_eq "$(zfs get -H -o value origin "$ZPOOL/clone")" "$ZPOOL/fs@one" "clone origin"
    expect_fail zfs destroy "$ZPOOL/fs@one"   # a clone depends on it
    exported=/srv/smoke-clone
    ;;
lvm)
    step "thin pool, thin LV, thin snapshot"
    d=$(disk lvmdisk)
    pvcreate -ff -y "$d"
    vgcreate "$VG" "$d"
    lvcreate -y --type thin-pool -L "$THINPOOL_SIZE" -n "$THINPOOL" "$VG"
    lvcreate -y -V 512M -T "$VG/$THINPOOL" -n base
    mkfs.ext4 -q "/dev/$VG/base"
    mkdir -p /srv/smoke /srv/smoke-snap
    mount "/dev/$VG/base" /srv/smoke
    echo hello >/srv/smoke/file
    sync
    lvcreate -y -s -n snap "$VG/base"
    # Thin snapshots are created with the activation-skip flag: -K overrides it.
    lvchange -ay -K "$VG/snap"
    echo changed >/srv/smoke/file
    mount "/dev/$VG/snap" /srv/smoke-snap
    assert_eq "$(cat /srv/smoke/file)" changed "origin LV"
    assert_eq "$(cat /srv/smoke-snap/file)" hello "thin snapshot"
    pct=$(lvs --noheadings -o data_percent "$VG/$THINPOOL" | tr -d ' ')
    echo "thin pool data use: $pct%"
    [[ -n $pct ]] || fail "lvs reports no data_percent for the thin pool"
    exported=/srv/smoke-snap
    ;;
*) skip "smoke has nothing for backend $SIDUS_TEST_BACKEND" ;;
esac

step "NFSv3 export of $exported over loopback"
echo "$exported 127.0.0.1(ro,no_root_squash,no_subtree_check)" >/etc/exports.d/smoke.exports
exportfs -ra
assert_contains "$(exportfs -v)" "$exported"
nfs_mount "$exported" /mnt/nfs
assert_eq "$(cat /mnt/nfs/file)" hello "file read over NFS"
umount /mnt/nfs
rm -f /etc/exports.d/smoke.exports
exportfs -ra

teardown_store
