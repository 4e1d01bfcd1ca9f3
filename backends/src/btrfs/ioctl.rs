//! Snapshots made with the kernel's own call, `BTRFS_IOC_SNAP_CREATE_V2`, as
//! snapper does. Forking `btrfs subvolume snapshot` cost more than the snapshot
//! itself: on a small store `sidus snapshot` took 1.75x the raw command
//! (bench/core.sh), most of it btrfs-progs loading its libraries.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::offset_of!(VolArgsV2, name), 56);
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
