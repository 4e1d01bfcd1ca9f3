//! The status line of a device-mapper device, straight from the kernel
//! (`DM_TABLE_STATUS` on `/dev/mapper/control`, what `dmsetup status` asks):
//! snapshot and clone check the thin pool's use first, and this costs a
//! system call where `dmsetup` cost a process.
//!
//! The ABI is linux/dm-ioctl.h, interface version 4: a `struct dm_ioctl`
//! header followed by a buffer the kernel fills with one `struct
//! dm_target_spec` per target, each followed by its NUL-terminated status.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsRawFd;

/// `struct dm_ioctl` (312 bytes).
#[repr(C)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; 128],
    uuid: [u8; 129],
    data: [u8; 7],
}

/// `struct dm_target_spec` (40 bytes), before each target's status text.
#[repr(C)]
struct TargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; 16],
}

/// The header and room for the kernel's answer, 8-byte aligned.
#[repr(C, align(8))]
struct Request {
    header: DmIoctl,
    buffer: [u8; 16 * 1024],
}

/// `DM_BUFFER_FULL_FLAG`: the answer did not fit.
const BUFFER_FULL: u32 = 1 << 8;

// _IOWR(DM_IOCTL, DM_TABLE_STATUS_CMD, struct dm_ioctl): 0xfd, 12.
nix::ioctl_readwrite!(dm_table_status, 0xfd, 12, DmIoctl);

/// The first target's status as `dmsetup status NAME` prints it
/// (`<start> <length> <type> <status...>`), or why not.
pub(super) fn status(name: &str) -> Result<String, String> {
    let control = File::options()
        .read(true)
        .write(true)
        .open("/dev/mapper/control")
        .map_err(|e| format!("/dev/mapper/control: {e}"))?;
    // SAFETY: every field of both structs is an integer or a byte array, for
    // which all zeros is a valid value.
    let mut req: Box<Request> = Box::new(unsafe { std::mem::zeroed() });
    let h = &mut req.header;
    h.version = [4, 0, 0];
    h.data_size = std::mem::size_of::<Request>() as u32;
    h.data_start = std::mem::size_of::<DmIoctl>() as u32;
    if name.len() >= h.name.len() {
        return Err(format!("device-mapper name too long: {name}"));
    }
    h.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `req` is one DmIoctl followed by data_size - data_start bytes
    // the kernel may write, as data_size says; it outlives the call.
    unsafe { dm_table_status(control.as_raw_fd(), &mut req.header) }
        .map_err(|e| format!("DM_TABLE_STATUS {name}: {e}"))?;
    let h = &req.header;
    if h.flags & BUFFER_FULL != 0 || h.target_count == 0 {
        return Err(format!("DM_TABLE_STATUS {name}: no status in the answer"));
    }
    let start = (h.data_start as usize)
        .checked_sub(std::mem::size_of::<DmIoctl>())
        .ok_or("bad data_start")?;
    parse_first(&req.buffer[start..])
}

/// The first target of a `DM_TABLE_STATUS` answer as a `dmsetup status` line.
fn parse_first(data: &[u8]) -> Result<String, String> {
    let spec_len = std::mem::size_of::<TargetSpec>();
    if data.len() < spec_len {
        return Err("short answer".into());
    }
    // SAFETY: `data` holds at least one TargetSpec, which is plain integers;
    // read_unaligned copes with any alignment.
    let spec: TargetSpec = unsafe { std::ptr::read_unaligned(data.as_ptr().cast()) };
    let kind = CStr::from_bytes_until_nul(&spec.target_type)
        .map_err(|_| "target type not terminated")?
        .to_string_lossy()
        .into_owned();
    let text = CStr::from_bytes_until_nul(&data[spec_len..])
        .map_err(|_| "status not terminated")?
        .to_string_lossy()
        .into_owned();
    Ok(format!(
        "{} {} {kind} {text}",
        spec.sector_start, spec.length
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<DmIoctl>(), 312);
        assert_eq!(std::mem::size_of::<TargetSpec>(), 40);
    }

    #[test]
    fn an_answer_reads_as_dmsetup_prints_it() {
        let mut data = Vec::new();
        data.extend_from_slice(&0u64.to_ne_bytes());
        data.extend_from_slice(&3_072_000u64.to_ne_bytes());
        data.extend_from_slice(&0i32.to_ne_bytes());
        data.extend_from_slice(&0u32.to_ne_bytes());
        let mut kind = [0u8; 16];
        kind[..9].copy_from_slice(b"thin-pool");
        data.extend_from_slice(&kind);
        data.extend_from_slice(
            b"7 119/1024 114/24000 - rw discard_passdown queue_if_no_space - 256 \0",
        );
        let line = parse_first(&data).unwrap();
        assert_eq!(
            line,
            "0 3072000 thin-pool 7 119/1024 114/24000 - rw discard_passdown queue_if_no_space - 256 "
        );
        assert!(super::super::pool::thin_pool_status(&line).is_some());
        assert!(parse_first(&data[..10]).is_err());
    }

    #[test]
    fn a_missing_device_is_an_error_not_a_panic() {
        // Without device-mapper (this machine) or without the device (VM).
        assert!(status("sidus-no-such-device-tpool").is_err());
    }
}
