//! Knowing two files are equal without reading them: on one btrfs file system,
//! two files that map exactly the same disk extents hold the same bytes. A
//! snapshot shares every unchanged file's extents with its tree, so a diff of
//! two snapshots reads only what changed.
//!
//! Sound only on one file system (two LVM snapshots have the same block
//! addresses for different bytes), so it is used only when both sides report
//! the same btrfs fsid. Extents whose address does not say where exactly the
//! bytes are (inline, compressed, delayed allocation, unwritten, ...) make the
//! caller read the files instead.

use std::os::fd::{AsFd, AsRawFd};

/// `BTRFS_IOC_FS_INFO`: `_IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)`.
const BTRFS_IOC_FS_INFO: libc::c_ulong = 0x8400_941f;
/// `FS_IOC_FIEMAP`: `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xc020_660b;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
/// Extents per FIEMAP call.
const BATCH: usize = 64;
/// Files with more extents than this are read instead.
const MAX_EXTENTS: usize = 4096;

/// The fsid of the btrfs file system `fd` is on; `None` on other file systems.
pub fn btrfs_fsid(fd: impl AsFd) -> Option<[u8; 16]> {
    // struct btrfs_ioctl_fs_info_args is 1024 bytes; fsid is at offset 16.
    let mut args = [0u64; 128];
    // SAFETY: the kernel writes at most the 1024 bytes of `args`, which lives
    // for the call; the descriptor is open.
    let rc = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            BTRFS_IOC_FS_INFO as _,
            args.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    let mut fsid = [0u8; 16];
    fsid[..8].copy_from_slice(&args[2].to_ne_bytes());
    fsid[8..].copy_from_slice(&args[3].to_ne_bytes());
    Some(fsid)
}

/// One mapped extent: (logical offset, physical address, length).
type Extent = (u64, u64, u64);

/// The native-endian u32 at byte `offset` of `words`.
fn u32_at(words: &[u64], offset: usize) -> u32 {
    let b = words[offset / 8].to_ne_bytes();
    let k = offset % 8;
    u32::from_ne_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]])
}

/// The extents of the open file `fd`, or `None` when some extent's address does
/// not pin down its bytes, there are too many, or FIEMAP is not supported.
fn extents(fd: impl AsFd) -> Option<Vec<Extent>> {
    // struct fiemap (32 bytes, 4 words) then BATCH struct fiemap_extent (56 bytes, 7 words).
    const HEADER: usize = 4;
    const EXTENT: usize = 7;
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let mut buf = [0u64; HEADER + BATCH * EXTENT];
        buf[0] = start; // fm_start
        buf[1] = u64::MAX - start; // fm_length
                                   // fm_flags, the u32 at byte 16: FIEMAP_FLAG_SYNC, because btrfs maps
                                   // a dirty overwrite of a shared extent to that extent until written
                                   // back (seen on 6.18: an unsynced `dd conv=notrunc` went unnoticed).
        let mut flags = [0u8; 8];
        flags[..4].copy_from_slice(&FIEMAP_FLAG_SYNC.to_ne_bytes());
        buf[2] = u64::from_ne_bytes(flags);
        // fm_extent_count, the u32 at byte 24.
        let mut count = [0u8; 8];
        count[..4].copy_from_slice(&(BATCH as u32).to_ne_bytes());
        buf[3] = u64::from_ne_bytes(count);
        // SAFETY: `buf` holds a struct fiemap with room for fm_extent_count
        // extents, as the kernel expects; it outlives the call.
        let rc =
            unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), FS_IOC_FIEMAP as _, buf.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        let mapped = u32_at(&buf, 20) as usize; // fm_mapped_extents
        if mapped == 0 {
            return Some(out);
        }
        for i in 0..mapped.min(BATCH) {
            let e = &buf[HEADER + i * EXTENT..HEADER + (i + 1) * EXTENT];
            let (logical, physical, length) = (e[0], e[1], e[2]);
            let flags = u32_at(e, 40); // fe_flags
            if flags & !(FIEMAP_EXTENT_LAST | FIEMAP_EXTENT_SHARED) != 0 {
                return None;
            }
            out.push((logical, physical, length));
            if flags & FIEMAP_EXTENT_LAST != 0 {
                return Some(out);
            }
            start = logical.checked_add(length)?;
        }
        if out.len() > MAX_EXTENTS {
            return None;
        }
    }
}

/// True when the two open files (on one btrfs file system, of equal size) map
/// exactly the same extents, hence hold the same bytes. False means "read them".
pub fn share_all_extents(a: impl AsFd, b: impl AsFd) -> bool {
    match (extents(a), extents(b)) {
        (Some(x), Some(y)) => !x.is_empty() && x == y,
        _ => false,
    }
}
