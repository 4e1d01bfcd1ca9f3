# backends: zfs lvm
# Reproducible IDs across storage: a snapshot exported from a btrfs store (a
# loop image made here) imports on ZFS and on LVM thin with the same ID, the
# same metadata and the same content root hash, and `verify` passes; through
# a pipe too. Tampering with the imported tree is named by `verify --path`;
# a truncated archive is refused and leaves no tree.

src_cfg=/tmp/sidus-btrfs-src.toml
bs() { SIDUS_CONFIG=$src_cfg sidus "$@"; }
cleanup_src() { umount /tmp/src-store 2>/dev/null || true; rm -f /tmp/src.img; }
trap cleanup_src EXIT

step "a btrfs loop store with a tree of awkward content"
bs init --loop /tmp/src.img --path /tmp/src-store --size 512M >/dev/null
# Filled in place: the VM's /tmp (tmpfs) has no user xattrs.
bs create lab >/dev/null
src=$(bs path lab)
mkdir -p "$src/etc" "$src/usr/bin" "$src/dev" "$src/home/alice" "$src/var/lib/dpkg"
echo hello >"$src/etc/motd"
setfattr -n user.b -v 2 "$src/etc/motd"
setfattr -n user.a -v 1 "$src/etc/motd"
head -c 70000 /dev/urandom >"$src/usr/bin/ping"
chmod 4755 "$src/usr/bin/ping"
setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 "$src/usr/bin/ping"
ln "$src/usr/bin/ping" "$src/usr/bin/ping6"
ln -s ../etc/motd "$src/usr/motd"
ln -s usr/bin "$src/bin"
mknod "$src/dev/null" c 1 3
mkfifo "$src/dev/fifo"
chown -R 1000:1000 "$src/home/alice"
long=$src/$(printf 'd%.0s' $(seq 90))/$(printf 'f%.0s' $(seq 120))
mkdir -p "${long%/*}" && echo deep >"$long"
echo s >"$src/a name with spaces"
head -c 2097152 /dev/urandom >"$src/var/lib/big"
printf 'Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n' \
    >"$src/var/lib/dpkg/status"
id=$(bs snapshot lab -m "for the paper")
root=$(bs manifest "lab@$id")
assert_eq "${#root}" 64 "root hash length"
bs export "lab@$id" -o /tmp/lab.tar
bs export "lab@$id" -o /tmp/lab2.tar
assert_eq "$(sha256sum </tmp/lab.tar)" "$(sha256sum </tmp/lab2.tar)" "export twice: same bytes"
src_meta=$(bs show "lab@$id" --json)

step "import on $SIDUS_TEST_BACKEND: same ID, metadata and root hash; verify passes"
setup_store
sidus import /tmp/lab.tar
assert_eq "$(sidus manifest "lab@$id")" "$root" "root hash on $SIDUS_TEST_BACKEND"
assert_contains "$(sidus verify "lab@$id")" "matches the manifest of lab@$id"
meta=$(sidus show "lab@$id" --json)
# The metadata is the same; ZFS and LVM properties keep times to the second.
strip='del(.created)'
assert_eq "$(jq -S "$strip" <<<"$meta")" "$(jq -S "$strip" <<<"$src_meta")" "metadata"
secs='.created | sub("\\.[0-9]+Z$"; "Z")'
assert_eq "$(jq -r "$secs" <<<"$meta")" "$(jq -r "$secs" <<<"$src_meta")" "created, to the second"
assert_eq "$(sidus snapshots lab --json | jq -r '.[].id')" "$id" "one snapshot, the archive's ID"
assert_eq "$(cat "$(sidus path "lab@$id")/etc/motd")" hello
assert_eq "$(getfattr --absolute-names -n security.capability -e hex "$(sidus path "lab@$id")/usr/bin/ping" | sed -n 's/^security.capability=//p')" \
    0x0100000200200000000000000000000000000000 "file capability kept"
# Exported again from here: the same manifest travels.
sidus export "lab@$id" -o /tmp/again.tar
assert_eq "$(tar -xOf /tmp/again.tar .sidus-archive/manifest | sha256sum)" \
    "$(tar -xOf /tmp/lab.tar .sidus-archive/manifest | sha256sum)" "the manifest re-exported"

step "through a pipe"
bs export "lab@$id" -o - | sidus import - --as piped
assert_eq "$(sidus manifest "piped@$id")" "$root" "piped import"

step "tampering with the imported tree is named, exit 1"
w=$(sidus path lab)
printf X | dd of="$w/var/lib/big" bs=1 seek=100000 conv=notrunc status=none
chmod 600 "$w/etc/motd"
expect_fail --rc 1 sidus verify "lab@$id" --path "$w"
assert_contains "$EF_OUT" "/var/lib/big"
assert_contains "$EF_OUT" "content"
assert_contains "$EF_OUT" "mode"
assert_contains "$EF_ERR" "in 2 places"

step "a truncated archive is refused and leaves no tree"
head -c 1000000 /tmp/lab.tar >/tmp/cut.tar
expect_fail --rc 1 sidus import /tmp/cut.tar --as cut
assert_contains "$EF_ERR" "the archive is truncated"
assert_eq "$(sidus list --json | jq -r '[.[].name] | sort | join(" ")')" "lab piped" "no tree 'cut'"
expect_fail --rc 1 sidus import /tmp/lab.tar
assert_contains "$EF_ERR" "tree 'lab' already exists"
