//! What is mounted where, from /proc/self/mountinfo: device numbers identify an
//! LV's mounts whatever name the LV or its /dev link has now.

use crate::{BackendError, Result};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The mounted device's (major, minor).
    pub dev: (u32, u32),
    /// Where it is mounted.
    pub target: PathBuf,
}

/// Reads the current process's mount table.
pub(crate) fn read() -> Result<Vec<Mount>> {
    let text =
        std::fs::read_to_string(MOUNTINFO).map_err(|e| BackendError::io("read", MOUNTINFO, e))?;
    Ok(parse(&text))
}

/// Parses mountinfo text; lines that do not fit are skipped.
pub(crate) fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // ID PARENT MAJOR:MINOR ROOT TARGET OPTIONS ...
            let mut fields = line.split(' ');
            let dev = fields.nth(2)?;
            let target = fields.nth(1)?;
            let (major, minor) = dev.split_once(':')?;
            Some(Mount {
                dev: (major.parse().ok()?, minor.parse().ok()?),
                target: unescape(target),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(crate::fsutil::unescape_mountinfo(field)))
}

/// Whether device `dev` is mounted at `target`.
pub(crate) fn is_mounted(mounts: &[Mount], dev: (u32, u32), target: &Path) -> bool {
    mounts.iter().any(|m| m.dev == dev && m.target == target)
}

/// Whatever is mounted at `target`, if anything (the last mount wins).
pub(crate) fn at<'a>(mounts: &'a [Mount], target: &Path) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.target == target)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime shared:1 - tmpfs rootfs rw
98 22 253:4 / /var/lib/sidus/lvm/state rw,relatime shared:50 - ext4 /dev/mapper/sidusvg-sidus.state rw
99 22 253:5 / /var/lib/sidus/lvm/trees/x-y_z rw,relatime shared:51 - ext4 /dev/mapper/sidusvg-sidus.t.x--y+z rw
100 22 253:6 / /var/lib/sidus/lvm/snapshots/lab/20261125T101500Z ro,relatime shared:52 - ext4 /dev/mapper/sidusvg-sidus.s.lab.20261125T101500Z ro,norecovery
101 22 253:6 / /srv/with\\040space\\134x ro,relatime shared:52 - ext4 /dev/mapper/sidusvg-sidus.s.lab.20261125T101500Z ro
garbage line
";

    #[test]
    fn parses_devices_and_unescapes_targets() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 5);
        assert_eq!(m[2].dev, (253, 5));
        assert_eq!(m[2].target, Path::new("/var/lib/sidus/lvm/trees/x-y_z"));
        assert_eq!(m[4].target, Path::new("/srv/with space\\x"));
        assert!(is_mounted(
            &m,
            (253, 6),
            Path::new("/var/lib/sidus/lvm/snapshots/lab/20261125T101500Z")
        ));
        assert!(!is_mounted(
            &m,
            (253, 7),
            Path::new("/var/lib/sidus/lvm/state")
        ));
        assert_eq!(at(&m, Path::new("/")).map(|m| m.dev), Some((0, 21)));
    }

    #[test]
    fn real_mount_table_parses() {
        let m = read().unwrap();
        assert!(m.iter().any(|m| m.target == Path::new("/")));
    }
}
