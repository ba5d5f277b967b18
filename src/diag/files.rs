//! The files the library writes (the `SESSCACHE_LOG` file and the
//! `SESSCACHE_STATS` files), opened so that whoever can write to their
//! directory cannot make the library write anywhere else.
//!
//! The library often runs as root (nginx's master) in a process whose
//! children drop to another user, and the stats directory must be writable
//! by that user (each worker writes its own file). So every name is opened
//! relative to a directory descriptor with `O_NOFOLLOW`, temporary files
//! with `O_EXCL`, and the stats file is put in place with `renameat`, which
//! replaces a name and never follows one: a symlink or hard link planted
//! at one of our names is never written through. The operator's own path
//! is followed up to its last component, which must be the directory
//! (stats) or the file (log) itself: a symlink there is refused, since the
//! library cannot tell who planted it.

use std::ffi::{CString, OsStr, c_int};
use std::fs::File;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Stats files: counters only, so readable by monitoring as the umask
/// allows.
const STATS_FILE_MODE: libc::mode_t = 0o644;

/// The log names sessions (ID prefixes): owner only.
const LOG_FILE_MODE: libc::mode_t = 0o600;

fn c_name(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `openat(2)` with `O_CLOEXEC` added; `dir` `None` is the working directory.
fn open_at(
    dir: Option<BorrowedFd<'_>>,
    name: &CString,
    flags: c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: a NUL-terminated name and a live descriptor (or AT_FDCWD).
    let fd = unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: a live descriptor and room for one `struct stat`.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat filled it in.
    Ok(unsafe { st.assume_init() })
}

/// What is at `name` in `dir`, without following a symlink; `None` if
/// nothing is.
fn stat_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<Option<libc::stat>> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: a live descriptor, a NUL-terminated name, room for one
    // `struct stat`.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        // SAFETY: fstatat filled it in.
        return Ok(Some(unsafe { st.assume_init() }));
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        e => Err(e),
    }
}

/// Removes the name `name` from `dir` (never what a symlink points to).
fn unlink_at(dir: BorrowedFd<'_>, name: &CString) {
    // SAFETY: a live descriptor and a NUL-terminated name.
    unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
}

fn rename_at(dir: BorrowedFd<'_>, from: &CString, to: &CString) -> io::Result<()> {
    // SAFETY: a live descriptor and two NUL-terminated names.
    if unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

/// What a `st_mode` is, for a message.
fn kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => "a symlink",
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        _ => "a special file",
    }
}

/// Whether an owner can be trusted with a file the library writes: the
/// process's own user, or root (who could write anything anyway).
fn trusted_owner(owner: u32, euid: u32) -> bool {
    owner == euid || owner == 0
}

/// Why a stats directory with this mode and owner is refused, if it is.
/// Others (group or world) may not write to it, unless it is sticky and
/// owned by us or root (as `/run/user/…` or a shared spool would be): then
/// they cannot rename or remove our files, only add their own.
fn stats_dir_refusal(mode: u32, owner: u32, euid: u32) -> Option<String> {
    if mode & libc::S_IFMT != libc::S_IFDIR {
        return Some(format!("is {}, not a directory", kind(mode)));
    }
    if mode & 0o022 == 0 {
        return None;
    }
    if mode & libc::S_ISVTX != 0 && trusted_owner(owner, euid) {
        return None;
    }
    Some(format!(
        "is writable by group or others (mode {:o}, owner uid {owner}) and is not \
         a sticky directory of ours",
        mode & 0o7777
    ))
}

/// Why an existing log file is refused, if it is: only a regular file,
/// of ours or root's (not one another user made, which they could read),
/// with no other name (not a hard link planted to another file).
fn log_file_refusal(mode: u32, owner: u32, links: u64, euid: u32) -> Option<String> {
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Some(format!("is {}, not a regular file", kind(mode)));
    }
    if !trusted_owner(owner, euid) {
        return Some(format!("belongs to another user (uid {owner})"));
    }
    if links != 1 {
        return Some(format!("has {links} names (hard links)"));
    }
    None
}

/// Whether something found at one of our own names is a file of ours that
/// may be replaced (a leftover of a write that did not finish).
fn replaceable(st: &libc::stat, euid: u32) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG && trusted_owner(st.st_uid, euid)
}

/// Why opening the operator's path failed, for a message.
fn open_failure(path: &Path, error: &io::Error) -> String {
    let is_symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_symlink {
        "is a symlink (name the real path)".into()
    } else {
        format!("cannot be opened ({error})")
    }
}

/// The stats directory, opened once (at load, while the process still has
/// the privileges it started with) and written through for the rest of the
/// process and its forked children.
pub struct StatsDir {
    fd: OwnedFd,
    shown: String,
}

impl StatsDir {
    /// Opens `path`; the error says why it is refused.
    pub fn open(path: &OsStr) -> Result<StatsDir, String> {
        let shown = Path::new(path).display().to_string();
        let refused =
            |why: String| format!("sesscache: SESSCACHE_STATS={shown} {why}; no stats file");
        let name = c_name(path.as_bytes()).map_err(|e| refused(e.to_string()))?;
        let fd = open_at(
            None,
            &name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| refused(open_failure(Path::new(path), &e)))?;
        let st = stat_fd(fd.as_fd()).map_err(|e| refused(e.to_string()))?;
        if let Some(why) = stats_dir_refusal(st.st_mode, st.st_uid, euid()) {
            return Err(refused(why));
        }
        Ok(StatsDir { fd, shown })
    }

    /// Replaces `final_name` (`sesscache.<pid>.stats`, `.prom`) with
    /// `text`: written to `.<final_name>.tmp` first, so that a reader never
    /// sees half of it (and collectors, which read `*.prom`, skip it). The
    /// error says what was refused and why.
    pub fn write(&self, final_name: &str, text: &str) -> Result<(), String> {
        let dir = self.fd.as_fd();
        let tmp_name = format!(".{final_name}.tmp");
        let refused = |name: &str, why: String| {
            format!(
                "sesscache: SESSCACHE_STATS: {}/{name} {why}; left alone, no stats file",
                self.shown
            )
        };
        let (Ok(final_c), Ok(tmp_c)) = (c_name(final_name.as_bytes()), c_name(tmp_name.as_bytes()))
        else {
            return Err(refused(final_name, "cannot be named".into()));
        };
        let euid = euid();
        // A name of ours that holds something we did not make was planted:
        // say so rather than quietly replacing it.
        if let Ok(Some(st)) = stat_at(dir, &final_c) {
            if !replaceable(&st, euid) {
                return Err(refused(
                    final_name,
                    format!("is {} we did not make", kind(st.st_mode)),
                ));
            }
        }
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = match open_at(Some(dir), &tmp_c, flags, STATS_FILE_MODE) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => match stat_at(dir, &tmp_c) {
                Ok(Some(st)) if replaceable(&st, euid) => {
                    unlink_at(dir, &tmp_c);
                    open_at(Some(dir), &tmp_c, flags, STATS_FILE_MODE)
                        .map_err(|e| refused(&tmp_name, format!("cannot be created ({e})")))?
                }
                Ok(Some(st)) => {
                    return Err(refused(
                        &tmp_name,
                        format!("is {} we did not make", kind(st.st_mode)),
                    ));
                }
                _ => return Err(refused(&tmp_name, format!("cannot be created ({e})"))),
            },
            Err(e) => return Err(refused(&tmp_name, format!("cannot be created ({e})"))),
            Ok(fd) => fd,
        };
        let written = File::from(fd)
            .write_all(text.as_bytes())
            .and_then(|()| rename_at(dir, &tmp_c, &final_c));
        if let Err(e) = written {
            unlink_at(dir, &tmp_c);
            return Err(refused(final_name, format!("cannot be written ({e})")));
        }
        Ok(())
    }
}

/// Opens the log file `path` for appending, creating it (mode 0600) if it
/// is not there; the error says why it is refused.
pub fn open_log(path: &OsStr) -> Result<File, String> {
    let path = Path::new(path);
    let refused = |why: String| {
        format!(
            "sesscache: SESSCACHE_LOG={} {why}; logging to stderr",
            path.display()
        )
    };
    let Some(file_name) = path.file_name() else {
        return Err(refused("names no file".into()));
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.as_os_str(),
        _ => OsStr::new("."),
    };
    let (Ok(parent_c), Ok(name_c)) = (c_name(parent.as_bytes()), c_name(file_name.as_bytes()))
    else {
        return Err(refused("cannot be named".into()));
    };
    let dir = open_at(None, &parent_c, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| refused(format!("is in a directory that cannot be opened ({e})")))?;
    // O_NONBLOCK: opening a FIFO planted there must not hang the process.
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_NOCTTY
        | libc::O_NONBLOCK;
    let fd = open_at(Some(dir.as_fd()), &name_c, flags, LOG_FILE_MODE)
        .map_err(|e| refused(open_failure(path, &e)))?;
    let st = stat_fd(fd.as_fd()).map_err(|e| refused(e.to_string()))?;
    if let Some(why) = log_file_refusal(st.st_mode, st.st_uid, st.st_nlink, euid()) {
        return Err(refused(why));
    }
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: u32 = libc::S_IFDIR;
    const REG: u32 = libc::S_IFREG;

    #[test]
    fn a_stats_directory_only_we_can_write_is_used() {
        assert_eq!(stats_dir_refusal(DIR | 0o755, 33, 0), None);
        assert_eq!(stats_dir_refusal(DIR | 0o700, 1000, 1000), None);
        // sticky and ours or root's: others cannot touch our names
        assert_eq!(stats_dir_refusal(DIR | 0o1777, 0, 1000), None);
        assert_eq!(stats_dir_refusal(DIR | 0o1770, 1000, 1000), None);
    }

    #[test]
    fn a_stats_directory_others_can_write_is_refused() {
        assert!(stats_dir_refusal(DIR | 0o777, 0, 0).is_some());
        assert!(stats_dir_refusal(DIR | 0o775, 1000, 1000).is_some());
        // sticky, but owned by someone else, who can remove our names
        assert!(stats_dir_refusal(DIR | 0o1777, 33, 1000).is_some());
        assert!(stats_dir_refusal(REG | 0o600, 0, 0).is_some());
        assert!(stats_dir_refusal(libc::S_IFLNK | 0o777, 0, 0).is_some());
    }

    #[test]
    fn a_log_file_must_be_a_lone_regular_file_of_ours() {
        assert_eq!(log_file_refusal(REG | 0o600, 1000, 1, 1000), None);
        assert_eq!(log_file_refusal(REG | 0o644, 0, 1, 1000), None);
        assert!(log_file_refusal(REG | 0o666, 33, 1, 1000).is_some());
        assert!(log_file_refusal(REG | 0o600, 1000, 2, 1000).is_some());
        assert!(log_file_refusal(libc::S_IFIFO | 0o600, 1000, 1, 1000).is_some());
        assert!(log_file_refusal(libc::S_IFCHR | 0o666, 0, 1, 1000).is_some());
    }
}
