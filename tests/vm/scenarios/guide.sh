# backends: btrfs zfs lvm
# The README's guide, run as written: every ```sh block after a
# `<!-- guide -->` line (or `<!-- guide: BACKEND -->` for this backend) of the
# installed /usr/share/doc/sidus/README.md, in order, each in its own
# `bash -euo pipefail`, with the default config /etc/sidus/sidus.toml. Blocks
# marked `<!-- guide: skip: WHY -->` are listed with their reason; a ```sh
# block of the guide without a marker fails the scenario.
#
# What a site already has is set up first: the ZFS pool `tank` or the volume
# group `vg0` with the thin pool `pool` (on the test disk), and an NFS root
# /srv/nfsroot. That root is a small stand-in for a Debian tree (dash and its
# libraries, a kernel file, initramfs-tools' directory and a stub
# update-initramfs that writes an initrd): netboot.sh boots a real one. The
# replication step's second boot server is a second store on this host.

# The site's names, as the guide spells them (teardown_store uses these).
ZPOOL=tank
VG=vg0
THINPOOL=pool
# The default path, which the guide's commands read when SIDUS_CONFIG is unset.
export SIDUS_CONFIG=/etc/sidus/sidus.toml
config=$SIDUS_CONFIG
readme=/usr/share/doc/sidus/README.md

cleanup() {
    set +e
    # Published snapshots and snapshot views first, then the store itself.
    for m in $(findmnt -rn -o TARGET | grep -E '^/(srv/sidus|var/lib/sidus)(/|$)' | sort -r); do
        umount -l "$m"
    done
    for img in /var/lib/sidus/store.img /var/lib/sidus/boot2.img; do
        losetup -j "$img" -O NAME -n | xargs -r -n1 losetup -d
        rm -f "$img"
    done
    rm -f /etc/exports.d/sidus.exports
    exportfs -ra
    rm -rf /etc/sidus
    teardown_store
    rm -rf /srv/nfsroot /srv/sidus /srv/tftp /var/tmp/compute-paper-2026.tar
}
trap cleanup EXIT

[[ -f $readme ]] || fail "the package installed no $readme"
[[ ! -e $config ]] || fail "$config exists before the guide's init"

step "the site: storage and an NFS root"
case $SIDUS_TEST_BACKEND in
zfs) zpool create -f -O mountpoint=none tank "$(disk zfsdisk)" ;;
lvm)
    d=$(disk lvmdisk)
    pvcreate -ff -y "$d" >/dev/null
    vgcreate vg0 "$d" >/dev/null
    lvcreate -y --type thin-pool -L "$THINPOOL_SIZE" -n pool vg0 >/dev/null
    ;;
btrfs) ;; # `sidus init` makes its loop image
esac
root=/srv/nfsroot
rm -rf "$root"
mkdir -p "$root"/{bin,boot,etc,tmp,usr/sbin,usr/share/initramfs-tools,var/tmp}
cp /usr/bin/dash "$root/bin/sh"
for lib in $(ldd /usr/bin/dash | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
echo "stand-in kernel" >"$root/boot/vmlinuz-6.1.0-26-amd64"
cat >"$root/usr/sbin/update-initramfs" <<'EOF'
#!/bin/sh
# Stand-in for initramfs-tools' update-initramfs (tests/vm/scenarios/guide.sh).
overlay=none
[ -e /etc/initramfs-tools/scripts/init-bottom/sidus ] && overlay=sidus
for k in /boot/vmlinuz-*; do
    echo "initrd of ${k#/boot/vmlinuz-}, overlay $overlay" >"/boot/initrd.img-${k#/boot/vmlinuz-}"
done
EOF
chmod 755 "$root/usr/sbin/update-initramfs"
echo "compute" >"$root/etc/hostname"
# The second boot server of the replication step: a second store on this
# host (ZFS: a dataset beside the first store, so zfs send is used; btrfs
# and LVM thin: a btrfs loop image, for LVM the archive stream across backends).
# Made when the guide's own config exists, after its init block.
second_store() {
    if [[ $SIDUS_TEST_BACKEND == zfs ]]; then
        sidus --config /etc/sidus/boot2.toml init --backend zfs --dataset tank/boot2 \
            --mountpoint /var/lib/sidus/boot2 --clients 10.0.0.0/24 >/dev/null
    else
        sidus --config /etc/sidus/boot2.toml init --backend btrfs --loop /var/lib/sidus/boot2.img \
            --path /var/lib/sidus/boot2 --size 1G --clients 10.0.0.0/24 >/dev/null
    fi
}

step "the guide's blocks from $readme"
# One file per block: MARKER on its first line, the block after it.
blocks=/tmp/guide-blocks
rm -rf "$blocks" && mkdir -p "$blocks"
awk -v dir="$blocks" '
    /^## Guide/ { in_guide = 1; next }
    in_guide && /^## / { in_guide = 0 }
    !in_guide { next }
    /^<!-- guide(: .*)? -->$/ {
        m = $0; sub(/^<!-- guide/, "", m); sub(/-->$/, "", m); sub(/^: */, "", m); sub(/ *$/, "", m)
        marker = m; marked = 1; next
    }
    /^```sh$/ {
        n++; file = sprintf("%s/%02d", dir, n)
        print (marked ? "marker " marker : "unmarked") >file
        marked = 0; marker = ""; in_block = 1; next
    }
    in_block && /^```$/ { in_block = 0; close(file); next }
    in_block { print >file }
' "$readme"
ran=0 skipped=0
for f in "$blocks"/*; do
    head=$(head -n 1 "$f")
    [[ $head != unmarked ]] || fail "guide block ${f##*/} has no <!-- guide --> marker: $(sed -n 2p "$f")"
    marker=${head#marker }
    case $marker in
    "") ;;
    skip:*) echo "guide block ${f##*/} not run here (${marker#skip: }): $(sed -n 2p "$f")"; skipped=$((skipped + 1)); continue ;;
    btrfs | zfs | lvm) [[ $marker == "$SIDUS_TEST_BACKEND" ]] || continue ;;
    *) fail "guide block ${f##*/}: unknown marker '$marker'" ;;
    esac
    if grep -q 'sidus remote add boot2' "$f"; then second_store; fi
    step "guide block ${f##*/}"
    tail -n +2 "$f" | sed 's/^/  $ /'
    tail -n +2 "$f" >"$f.sh"
    bash -euo pipefail "$f.sh" || fail "guide block ${f##*/} failed (above)"
    ran=$((ran + 1))
done
echo "guide: ran $ran blocks on $SIDUS_TEST_BACKEND, $skipped not runnable in the VM"
((ran >= 10)) || fail "only $ran guide blocks ran: did the markers change?"

step "what the guide left: a published, pinned, pruned tree, two nodes, a healthy store"
assert_contains "$(cat /srv/tftp/sidus/compute.ipxe)" "nfsroot=10.0.0.1:/srv/sidus/compute/"
assert_contains "$(cat /etc/exports.d/sidus.exports)" "10.0.0.0/24(ro"
assert_contains "$(sidus pins compute)" paper-2026
assert_contains "$(sidus nodes)" g001
[[ -f /srv/tftp/sidus/nodes/52-54-00-12-34-57.ipxe ]] || fail "no boot entry of node g001"
sidus doctor >/dev/null || fail "doctor is not healthy after the guide"
assert_eq "$(sidus --config /etc/sidus/boot2.toml --json snapshots compute | jq -r '.[-1].id')" \
    "$(sidus --json snapshots compute | jq -r '.[-1].id')" "the replica's newest snapshot"
[[ -s /var/tmp/compute-paper-2026.tar ]] || fail "the export wrote nothing"
published=$(sidus --json status compute | jq -r '.trees[0].current')
[[ -n $published ]] || fail "nothing current in sidus status --json"
assert_contains "$(cat "$(sidus path "compute@$published")/boot/initrd.img-6.1.0-26-amd64")" "initrd of 6.1.0-26-amd64, overlay sidus"
