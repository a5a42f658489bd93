//! Recording the owners a script sets, without letting it set them: a seccomp filter that
//! hands every call of the chown family to a supervisor (`SECCOMP_RET_USER_NOTIF`), which
//! notes the uid and gid against the file's inode and answers "done".
//!
//! This is what makes `fakeRootCommands` work for statically linked tools (busybox, Go
//! binaries): nothing is preloaded, the kernel stops the system call itself. The script runs
//! in a user namespace where only its own uid is mapped (as 0), so a real `chown 1000` could
//! not succeed there anyway; the supervisor makes it succeed on paper. Owners are kept by inode,
//! as fakeroot keeps them, so a file renamed after its chown keeps its owner.
//!
//! Only ownership is faked. `stat` shows the script 0 for every file it owns; chmod is real
//! (the files are the build user's), except for set-user-ID and set-group-ID bits, which Nix's
//! own seccomp filter refuses inside the sandbox — `perms` sets those.

use crate::layer::owners::{Inode, Owners};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

/// `AUDIT_ARCH_*` of the architectures whose chown calls are recorded.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The chown family on this architecture (aarch64 has only the `fchown` and `fchownat` forms).
#[cfg(target_arch = "x86_64")]
const CHOWN_CALLS: &[libc::c_long] =
    &[libc::SYS_chown, libc::SYS_lchown, libc::SYS_fchown, libc::SYS_fchownat];
#[cfg(target_arch = "aarch64")]
const CHOWN_CALLS: &[libc::c_long] = &[libc::SYS_fchown, libc::SYS_fchownat];

// Offsets into `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt, jf, k }
}

/// The filter: the chown family of this architecture goes to the supervisor, everything else
/// (other architectures' calls included: an unmapped uid then fails as it would) runs.
pub fn chown_filter() -> Vec<libc::sock_filter> {
    let load = |offset| statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    let calls = CHOWN_CALLS.len() as u8;
    let mut program = vec![load(DATA_ARCH), jump_if_equal(AUDIT_ARCH, 0, calls + 1), load(DATA_NR)];
    for (i, nr) in CHOWN_CALLS.iter().enumerate() {
        // to the USER_NOTIF return after the ALLOW one
        program.push(jump_if_equal(*nr as u32, calls - i as u8, 0));
    }
    program.push(statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    program.push(statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_USER_NOTIF));
    program
}

/// Installs `filter` on the calling thread (which must have set no_new_privs) and returns the
/// supervisor's end. Meant for a child between fork and exec: it allocates nothing.
pub fn install(filter: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    // SAFETY: `program` points at `filter`, which outlives the call; the kernel copies it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &program as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Answers the chown calls of the processes behind `listener` until the last of them has
/// exited, and returns the owners they set.
pub fn supervise(listener: OwnedFd) -> io::Result<Owners> {
    let mut owners = Owners::default();
    loop {
        let mut poll = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut poll, 1, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if poll.revents & libc::POLLIN == 0 {
            // POLLHUP: no process uses the filter any more.
            return Ok(owners);
        }
        // SAFETY: zeroed is the state the kernel wants seccomp_notif in (it checks).
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the listener takes a seccomp_notif to fill.
        if unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) } < 0 {
            match io::Error::last_os_error().raw_os_error() {
                // interrupted, or the caller died before we read its call
                Some(libc::EINTR | libc::ENOENT) => continue,
                _ => return Err(io::Error::last_os_error()),
            }
        }
        let error = match record(&notif, &listener, &mut owners) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
        };
        let mut response = libc::seccomp_notif_resp { id: notif.id, val: 0, error: -error, flags: 0 };
        // SAFETY: a response to the notification just received. ENOENT: the caller is gone.
        unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut response) };
    }
}

/// One chown call: what it names, and the owners it asks for. The error is the one the call
/// would have failed with (a missing file stays an error: only the permission is faked).
fn record(notif: &libc::seccomp_notif, listener: &OwnedFd, owners: &mut Owners) -> io::Result<()> {
    let args = notif.data.args;
    let nr = notif.data.nr as libc::c_long;
    let id = |arg: u64| Some(arg as u32).filter(|&id| id != u32::MAX);
    let pid = notif.pid;
    let (target, uid, gid) = if nr == libc::SYS_fchown {
        (Target::Fd(args[0] as i32), args[1], args[2])
    } else if nr == libc::SYS_fchownat {
        let flags = args[4] as i32;
        let path = read_string(pid, args[1])?;
        let target = if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
            Target::Fd(args[0] as i32)
        } else {
            Target::Path { dirfd: args[0] as i32, path, follow: flags & libc::AT_SYMLINK_NOFOLLOW == 0 }
        };
        (target, args[2], args[3])
    } else {
        #[cfg(target_arch = "x86_64")]
        let follow = nr == libc::SYS_chown;
        #[cfg(not(target_arch = "x86_64"))]
        let follow = true;
        (Target::Path { dirfd: libc::AT_FDCWD, path: read_string(pid, args[0])?, follow }, args[1], args[2])
    };
    // The memory read belonged to the process that made this call only if it still waits.
    let mut cookie = notif.id;
    // SAFETY: ID_VALID reads one u64.
    if unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut cookie) } < 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    let inode = target.inode(pid)?;
    owners.set(inode, id(uid), id(gid));
    Ok(())
}

/// What a chown call names, in the calling process's view.
enum Target {
    Fd(RawFd),
    Path { dirfd: RawFd, path: Vec<u8>, follow: bool },
}

impl Target {
    /// The inode the caller would have changed. Paths resolve in the caller's root (it may be
    /// chrooted, with mounts of its own): through `/proc/PID/root`, with `RESOLVE_IN_ROOT`.
    fn inode(&self, pid: u32) -> io::Result<Inode> {
        let proc = format!("/proc/{pid}");
        match self {
            Target::Fd(fd) => Ok(Inode::of(&fs::metadata(format!("{proc}/fd/{fd}"))?)),
            Target::Path { dirfd, path, follow } => {
                let mut full = Vec::new();
                if path.first() != Some(&b'/') {
                    let base = if *dirfd == libc::AT_FDCWD {
                        format!("{proc}/cwd")
                    } else {
                        format!("{proc}/fd/{dirfd}")
                    };
                    full.extend_from_slice(&in_root(&proc, &base)?);
                    full.push(b'/');
                }
                full.extend_from_slice(path);
                let root = fs::File::open(format!("{proc}/root"))?;
                let fd = open_in_root(&root, &full, *follow)?;
                Ok(Inode::of(&fs::File::from(fd).metadata()?))
            }
        }
    }
}

/// Where the directory `link` (`/proc/PID/cwd` or a descriptor of PID) is, seen from PID's root.
fn in_root(proc: &str, link: &str) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    let dir = fs::read_link(link)?.into_os_string().into_vec();
    let root = fs::read_link(format!("{proc}/root"))?.into_os_string().into_vec();
    if root == b"/" {
        return Ok(dir);
    }
    match dir.strip_prefix(root.as_slice()) {
        Some(rest) if rest.is_empty() || rest[0] == b'/' => Ok(rest.to_vec()),
        // somewhere outside its root (a descriptor opened before a chroot): as it is
        _ => Ok(dir),
    }
}

fn open_in_root(root: &fs::File, path: &[u8], follow: bool) -> io::Result<OwnedFd> {
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: zeroed open_how is "no flags"; the three fields are set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_IN_ROOT;
    // SAFETY: a valid directory descriptor, a NUL-terminated path and an open_how of its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The NUL-terminated string at `address` in the memory of process `pid` (at most PATH_MAX).
fn read_string(pid: u32, address: u64) -> io::Result<Vec<u8>> {
    let mem = fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut text = Vec::new();
    let mut at = address;
    while text.len() < libc::PATH_MAX as usize {
        // Read up to the end of the page: the next one may not be mapped.
        let mut piece = [0u8; 256];
        let room = (4096 - (at % 4096) as usize).min(piece.len());
        let n =
            mem.read_at(&mut piece[..room], at).map_err(|_| io::Error::from_raw_os_error(libc::EFAULT))?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = piece[..n].iter().position(|&b| b == 0) {
            text.extend_from_slice(&piece[..end]);
            return Ok(text);
        }
        text.extend_from_slice(&piece[..n]);
        at += n as u64;
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}
