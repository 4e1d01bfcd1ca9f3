//! `libzfs_core`, loaded at run time: the calls on the hot paths (snapshot,
//! clone, does a dataset exist) as one ioctl each, without starting `zfs`.
//!
//! Every `zfs` command pays for `libzfs_init` (it reads the mount table and
//! the pool configuration) before doing anything, so a sidus command that ran
//! `zfs` paid for sidus and a whole `zfs` on top; with these calls `sidus
//! snapshot` costs about what `zfs snapshot` does. The library is opened with
//! `dlopen`, so sidus links against nothing of ZFS and runs on hosts without
//! it; where it cannot be loaded (no ZFS userland, another soname, no
//! `/dev/zfs`) the backend runs the `zfs` command as before.
//!
//! The ABI used is the stable one of `libzfs_core.so.3` (OpenZFS 2.0-2.2) and
//! `libnvpair.so.3`: `lzc_snapshot`, `lzc_clone`, `lzc_exists` take names
//! and nvlists and return an errno; nvlists are built with `nvlist_alloc`
//! and `nvlist_add_*`.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::ptr;

/// An opaque `nvlist_t`.
type NvList = c_void;

/// `NV_UNIQUE_NAME` (sys/nvpair.h): a name appears once in the list.
const NV_UNIQUE_NAME: c_uint = 1;

/// `int lzc_snapshot(nvlist_t *snaps, nvlist_t *props, nvlist_t **errlist)`
type SnapshotFn = unsafe extern "C" fn(*mut NvList, *mut NvList, *mut *mut NvList) -> c_int;
/// `int lzc_clone(const char *fsname, const char *origin, nvlist_t *props)`
type CloneFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut NvList) -> c_int;
/// `boolean_t lzc_exists(const char *dataset)`
type ExistsFn = unsafe extern "C" fn(*const c_char) -> c_int;
/// `int libzfs_core_init(void)`
type InitFn = unsafe extern "C" fn() -> c_int;
/// `int nvlist_alloc(nvlist_t **nvlp, uint_t nvflag, int kmflag)`
type AllocFn = unsafe extern "C" fn(*mut *mut NvList, c_uint, c_int) -> c_int;
/// `void nvlist_free(nvlist_t *nvl)`
type FreeFn = unsafe extern "C" fn(*mut NvList);
/// `int nvlist_add_boolean(nvlist_t *nvl, const char *name)`
type AddBooleanFn = unsafe extern "C" fn(*mut NvList, *const c_char) -> c_int;
/// `int nvlist_add_string(nvlist_t *nvl, const char *name, const char *val)`
type AddStringFn = unsafe extern "C" fn(*mut NvList, *const c_char, *const c_char) -> c_int;

/// The functions used, resolved once.
pub(super) struct Lzc {
    snapshot: SnapshotFn,
    clone: CloneFn,
    exists: ExistsFn,
    nvlist_alloc: AllocFn,
    nvlist_free: FreeFn,
    nvlist_add_boolean: AddBooleanFn,
    nvlist_add_string: AddStringFn,
}

/// Resolves symbol `name` of `lib` as a function of type `T`.
macro_rules! function {
    ($lib:expr, $name:literal, $t:ty) => {
        std::mem::transmute::<*mut c_void, $t>(sym($lib, $name)?)
    };
}

impl std::fmt::Debug for Lzc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lzc(libzfs_core.so.3)")
    }
}

// SAFETY: the struct holds only function pointers into libraries that stay
// loaded for the life of the process (never dlclose'd); libzfs_core's calls
// are thread-safe once libzfs_core_init has run.
unsafe impl Send for Lzc {}
unsafe impl Sync for Lzc {}

/// An nvlist freed on drop.
struct Owned<'a> {
    lzc: &'a Lzc,
    list: *mut NvList,
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        // SAFETY: `list` came from nvlist_alloc and is freed once, here.
        unsafe { (self.lzc.nvlist_free)(self.list) }
    }
}

/// Why a call failed: the errno, or a name the C side cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failed {
    /// The errno libzfs_core returned.
    Errno(i32),
    /// A name or value with a NUL byte (never a sidus name).
    Nul,
}

fn cstr(s: &str) -> Result<CString, Failed> {
    CString::new(s).map_err(|_| Failed::Nul)
}

fn check(rc: c_int) -> Result<(), Failed> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Failed::Errno(rc))
    }
}

impl Lzc {
    /// Loads the libraries and opens `/dev/zfs`; `None` when either is not
    /// there, with the reason logged.
    pub fn load() -> Option<Lzc> {
        match Self::try_load() {
            Ok(l) => Some(l),
            Err(why) => {
                log::debug!("libzfs_core not used ({why}): running the zfs command");
                None
            }
        }
    }

    fn try_load() -> Result<Lzc, String> {
        let core = open(c"libzfs_core.so.3")?;
        let nvpair = open(c"libnvpair.so.3")?;
        // SAFETY: each symbol is cast to the signature libzfs_core.h and
        // sys/nvpair.h give it; the libraries are never unloaded.
        let (lzc, init) = unsafe {
            (
                Lzc {
                    snapshot: function!(core, c"lzc_snapshot", SnapshotFn),
                    clone: function!(core, c"lzc_clone", CloneFn),
                    exists: function!(core, c"lzc_exists", ExistsFn),
                    nvlist_alloc: function!(nvpair, c"nvlist_alloc", AllocFn),
                    nvlist_free: function!(nvpair, c"nvlist_free", FreeFn),
                    nvlist_add_boolean: function!(nvpair, c"nvlist_add_boolean", AddBooleanFn),
                    nvlist_add_string: function!(nvpair, c"nvlist_add_string", AddStringFn),
                },
                function!(core, c"libzfs_core_init", InitFn),
            )
        };
        // SAFETY: libzfs_core_init opens /dev/zfs; it is called once per Lzc,
        // and the descriptor stays open for the process (libzfs_core_fini is
        // never needed: the process exits).
        let rc = unsafe { init() };
        if rc != 0 {
            return Err(format!(
                "libzfs_core_init: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        Ok(lzc)
    }

    fn nvlist(&self) -> Result<Owned<'_>, Failed> {
        let mut list = ptr::null_mut();
        // SAFETY: nvlist_alloc writes a new list to `list` on success.
        check(unsafe { (self.nvlist_alloc)(&mut list, NV_UNIQUE_NAME, 0) })?;
        Ok(Owned { lzc: self, list })
    }

    fn strings(&self, props: &[(String, String)]) -> Result<Owned<'_>, Failed> {
        let list = self.nvlist()?;
        for (k, v) in props {
            let (k, v) = (cstr(k)?, cstr(v)?);
            // SAFETY: the list is live; the strings are copied into it.
            check(unsafe { (self.nvlist_add_string)(list.list, k.as_ptr(), v.as_ptr()) })?;
        }
        Ok(list)
    }

    /// `zfs snapshot -o K=V... NAME`: one snapshot with its user properties,
    /// created atomically with them.
    pub fn snapshot(&self, name: &str, props: &[(String, String)]) -> Result<(), Failed> {
        let snaps = self.nvlist()?;
        let n = cstr(name)?;
        // SAFETY: the list is live; the name is copied into it.
        check(unsafe { (self.nvlist_add_boolean)(snaps.list, n.as_ptr()) })?;
        let props = self.strings(props)?;
        let mut errors: *mut NvList = ptr::null_mut();
        // SAFETY: both lists are live for the call; `errors` receives a list
        // (or stays null) that we free.
        let rc = unsafe { (self.snapshot)(snaps.list, props.list, &mut errors) };
        if !errors.is_null() {
            drop(Owned {
                lzc: self,
                list: errors,
            });
        }
        check(rc)
    }

    /// `zfs clone -o K=V... ORIGIN NAME`, without mounting it.
    pub fn clone(
        &self,
        name: &str,
        origin: &str,
        props: &[(String, String)],
    ) -> Result<(), Failed> {
        let (n, o) = (cstr(name)?, cstr(origin)?);
        let props = self.strings(props)?;
        // SAFETY: the strings and the list are live for the call.
        check(unsafe { (self.clone)(n.as_ptr(), o.as_ptr(), props.list) })
    }

    /// Whether the dataset or snapshot `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool, Failed> {
        let n = cstr(name)?;
        // SAFETY: the string is live for the call.
        Ok(unsafe { (self.exists)(n.as_ptr()) } != 0)
    }
}

/// dlopen, or why not.
fn open(name: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: dlopen with a NUL-terminated name; the handle is never closed.
    let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        Err(dl_error(name))
    } else {
        Ok(h)
    }
}

/// dlsym, or why not.
fn sym(handle: *mut c_void, name: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: a live handle and a NUL-terminated name.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        Err(dl_error(name))
    } else {
        Ok(p)
    }
}

fn dl_error(what: &CStr) -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message valid until
    // the next dl call on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        format!("{} not found", what.to_string_lossy())
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_zfs_loads_nothing_and_says_why() {
        // This machine (and CI) has no ZFS userland: the backend must fall
        // back to the CLI rather than fail. Where it has one, loading works.
        match Lzc::try_load() {
            Ok(_) => eprintln!("libzfs_core loaded on this host"),
            Err(why) => assert!(!why.is_empty()),
        }
        assert!(open(c"libsidus-no-such-library.so.0").is_err());
    }
}
