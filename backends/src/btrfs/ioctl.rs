//! Snapshots made with the kernel's own call, `BTRFS_IOC_SNAP_CREATE_V2`, as
//! snapper does. Forking `btrfs subvolume snapshot` cost more than the snapshot
//! itself: on a small store `sidus snapshot` took 1.75x the raw command
//! (bench/core.sh), most of it btrfs-progs loading its libraries. Likewise
//! the metadata-only send stream of what changed between two snapshots
//! (`BTRFS_IOC_SEND`, as `btrfs send --no-data -p` makes it), which a child
//! snapshot's manifest waits for.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `BTRFS_SUBVOL_RDONLY` (linux/btrfs.h).
const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_SUBVOL_NAME_MAX` (linux/btrfs.h): the name field is one longer.
const SUBVOL_NAME_MAX: usize = 4039;
/// `BTRFS_NAME_LEN`: what the kernel accepts as a subvolume name.
const NAME_LEN: usize = 255;

/// `struct btrfs_ioctl_vol_args_v2` without the qgroup-inherit union member,
/// which sidus never sets (the field stays zero, as btrfs-progs leaves it).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_MAX + 1],
}

// _IOW(BTRFS_IOCTL_MAGIC, 23, struct btrfs_ioctl_vol_args_v2); the struct is 4096 bytes.
nix::ioctl_write_ptr!(snap_create_v2, 0x94, 23, VolArgsV2);

/// Snapshots the subvolume at `source` as `dest`, read-only when asked. The
/// parent directory of `dest` must exist on the same btrfs file system; an
/// existing `dest` is `EEXIST`, a full file system `ENOSPC`.
pub(crate) fn snapshot(source: &Path, dest: &Path, readonly: bool) -> io::Result<()> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_string());
    let parent = dest
        .parent()
        .ok_or_else(|| invalid("no parent directory"))?;
    let name = dest
        .file_name()
        .ok_or_else(|| invalid("no file name"))?
        .as_encoded_bytes();
    if name.len() > NAME_LEN {
        return Err(invalid("name longer than 255 bytes"));
    }
    log::debug!(
        "ioctl: BTRFS_IOC_SNAP_CREATE_V2 {} -> {}{}",
        source.display(),
        dest.display(),
        if readonly { " (read-only)" } else { "" }
    );
    let src = File::open(source)?;
    let dir = File::open(parent)?;
    let mut args = Box::new(VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: if readonly { SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: [0; SUBVOL_NAME_MAX + 1],
    });
    args.name[..name.len()].copy_from_slice(name);
    // SAFETY: `args` is a complete, zero-padded btrfs_ioctl_vol_args_v2 that
    // outlives the call, and both descriptors are open until the end of scope.
    unsafe { snap_create_v2(dir.as_raw_fd(), &*args) }?;
    Ok(())
}

/// `struct btrfs_ioctl_send_args` (linux/btrfs.h).
#[repr(C)]
struct SendArgs {
    send_fd: i64,
    clone_sources_count: u64,
    clone_sources: *const u64,
    parent_root: u64,
    flags: u64,
    version: u32,
    reserved: [u8; 28],
}

/// `struct btrfs_ioctl_ino_lookup_args`.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

/// `BTRFS_SEND_FLAG_NO_FILE_DATA`: changed ranges, not their bytes.
const SEND_NO_FILE_DATA: u64 = 1;
/// `BTRFS_FIRST_FREE_OBJECTID`: a subvolume's top directory.
const FIRST_FREE_OBJECTID: u64 = 256;

nix::ioctl_write_ptr!(send, 0x94, 38, SendArgs);
nix::ioctl_readwrite!(ino_lookup, 0x94, 18, InoLookupArgs);

/// The id of the subvolume open as `dir` (its top directory).
fn root_id(dir: &File) -> io::Result<u64> {
    let mut args = Box::new(InoLookupArgs {
        treeid: 0,
        objectid: FIRST_FREE_OBJECTID,
        name: [0; 4080],
    });
    // SAFETY: `args` is a complete btrfs_ioctl_ino_lookup_args that outlives
    // the call; `dir` is open.
    unsafe { ino_lookup(dir.as_raw_fd(), &mut *args) }?;
    Ok(args.treeid)
}

/// The metadata-only send stream of read-only subvolume `to` against
/// read-only subvolume `from` (v1, as `btrfs send --no-data -p FROM TO`).
pub(crate) fn send_no_data(from: &Path, to: &Path) -> io::Result<Vec<u8>> {
    log::debug!(
        "ioctl: BTRFS_IOC_SEND --no-data -p {} {}",
        from.display(),
        to.display()
    );
    let parent_root = root_id(&File::open(from)?)?;
    let source = File::open(to)?;
    // The kernel writes the stream to a file it is given: one in memory, so
    // nothing is left behind and no thread has to drain a pipe.
    let out = nix::sys::memfd::memfd_create(
        c"sidus-send",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )?;
    let args = SendArgs {
        send_fd: i64::from(out.as_raw_fd()),
        clone_sources_count: 0,
        clone_sources: std::ptr::null(),
        parent_root,
        flags: SEND_NO_FILE_DATA,
        version: 0,
        reserved: [0; 28],
    };
    // SAFETY: `args` is a complete btrfs_ioctl_send_args that outlives the
    // call (no clone sources), and both descriptors are open until the end.
    unsafe { send(source.as_raw_fd(), &args) }?;
    let mut file = File::from(out);
    let mut stream = Vec::new();
    io::Seek::rewind(&mut file)?;
    io::Read::read_to_end(&mut file, &mut stream)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::offset_of!(VolArgsV2, name), 56);
        assert_eq!(std::mem::size_of::<SendArgs>(), 72);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
    }

    #[test]
    fn refuses_names_the_kernel_would_refuse_and_non_btrfs() {
        let d = tempfile::tempdir().unwrap();
        let long = d.path().join("x".repeat(256));
        let e = snapshot(d.path(), &long, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // tmpfs or ext4 under the test: not a btrfs subvolume.
        if let Err(e) = snapshot(d.path(), &d.path().join("s"), true) {
            assert!(e.raw_os_error().is_some(), "{e}");
        }
    }
}
