//! Running a customisation script (`extraCommands`, `fakeRootCommands`, `runAsRoot`) in an
//! image root, with no privilege, no setuid helper and no virtual machine.
//!
//! - As the build user ([`Confinement::BuildUser`]): a plain child in the root's directory.
//! - As fake root ([`Confinement::FakeRoot`]): the child makes itself a user namespace (its own
//!   uid mapped to 0, nothing else), a mount namespace and a PID namespace, in which the shell
//!   is process 1 — when it ends, whatever it left running ends with it. Its chown calls go to
//!   the supervisor in [`crate::script::seccomp`], which records the owners for the layer.
//! - Chrooted ([`Confinement::Chroot`]): fake root, and the shell's root is the image root, with
//!   the store bind-mounted at its real place, `/dev` and `/sys` bound from the build's own (Nix's
//!   sandbox has no `/sys`; a chroot in it has none either), and
//!   a `/proc` of the script's own PID namespace mounted *inside* the chroot. Mount points the
//!   image did not have are made for the run and removed after it.
//!
//! Scripts run with `sh -e -c SCRIPT NAME`: the text reaches the shell byte for byte, the first
//! failing command fails the script (as in Nix's builders), and `$0` names the argument.

use crate::layer::owners::Owners;
use crate::script::seccomp;
use crate::{Error, Result};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a script runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confinement {
    /// As the build user, in the root's directory.
    BuildUser,
    /// As fake root, in the root's directory.
    FakeRoot,
    /// As fake root, chrooted into the root, the store at `store_dir` visible.
    Chroot {
        /// The store root, mounted at the same place inside.
        store_dir: PathBuf,
    },
}

/// The shell a script runs with.
#[derive(Debug, Clone, Copy)]
pub enum Shell<'a> {
    /// An executable file, opened before any chroot: one outside the image also works there if
    /// it is statically linked (or lives in the store).
    Path(&'a Path),
    /// The image's own `/bin/sh`, chrooted.
    Image,
}

impl Shell<'_> {
    /// The path that is run, as the script's process sees it.
    pub fn path(&self) -> &Path {
        match self {
            Shell::Path(path) => path,
            Shell::Image => Path::new(IMAGE_SHELL),
        }
    }
}

/// Where images keep their POSIX shell.
pub const IMAGE_SHELL: &str = "/bin/sh";

/// One script to run.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    /// The argument it came from (`fakeRootCommands`): its `$0` and the name errors give.
    pub name: &'static str,
    /// Its text.
    pub text: &'a str,
    /// The POSIX shell that runs it.
    pub shell: Shell<'a>,
    /// Its environment.
    pub env: &'a [(String, String)],
}

/// Runs `script` in `root` as `confinement` says; returns the owners a fake root set (none for
/// the build user). A script that fails is an error with its exit status; its output went to
/// stderr, so it is in the build log.
pub fn run(script: &Script, root: &Path, confinement: &Confinement) -> Result<Owners> {
    if script.text.len() > MAX_SCRIPT {
        return Err(Error::argument(
            script.name,
            format!(
                "is {} bytes long; a script may have at most {MAX_SCRIPT} (one argument of a process)",
                script.text.len()
            ),
        ));
    }
    let status = match confinement {
        Confinement::BuildUser => {
            let status = Command::new(script.shell.path())
                .arg0("sh")
                .args(["-e", "-c", script.text, script.name])
                .current_dir(root)
                .env_clear()
                .envs(script.env.iter().map(|(k, v)| (k, v)))
                .status()
                .map_err(|e| Error::io(script.shell.path(), e))?;
            return exit_result(script, status.code(), status.signal()).map(|()| Owners::default());
        }
        Confinement::FakeRoot => fake_root(script, root, None)?,
        Confinement::Chroot { store_dir } => {
            let mounts = MountPoints::make(root, store_dir)?;
            let result = fake_root(script, root, Some(&mounts));
            mounts.remove()?;
            result?
        }
    };
    let (owners, code) = status;
    exit_result(script, Some(code), None)?;
    Ok(owners)
}

/// Linux's limit on one argument (MAX_ARG_STRLEN), the script's text included.
const MAX_SCRIPT: usize = 32 * 4096 - 1;

fn exit_result(script: &Script, code: Option<i32>, signal: Option<i32>) -> Result<()> {
    match (code, signal) {
        (Some(0), _) => Ok(()),
        (Some(code), _) if code > 128 => {
            Err(Error::ScriptFailed { name: script.name, status: format!("killed by signal {}", code - 128) })
        }
        (Some(code), _) => {
            Err(Error::ScriptFailed { name: script.name, status: format!("exit code {code}") })
        }
        (None, signal) => Err(Error::ScriptFailed {
            name: script.name,
            status: format!("killed by signal {}", signal.unwrap_or(0)),
        }),
    }
}

/// The directories a chroot needs for its mounts, and which of them this run made.
struct MountPoints {
    proc: CString,
    dev: CString,
    sys: Option<CString>,
    /// (what, where) of the store's bind mounts.
    store_binds: Vec<(CString, CString)>,
    /// Mount points this run made, and the mode each was made with (`None`: a file).
    made: Vec<(PathBuf, Option<u32>)>,
}

impl MountPoints {
    fn make(root: &Path, store_dir: &Path) -> Result<MountPoints> {
        let mut made = Vec::new();
        let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        // Nix's sandbox has no /sys (and a fresh sysfs may only be mounted where one is
        // visible already): it is bound where the build has one.
        let has_sys = Path::new("/sys/kernel").is_dir();
        let wanted = [
            Some(Path::new("/proc")),
            Some(Path::new("/dev")),
            has_sys.then_some(Path::new("/sys")),
            Some(store_dir),
        ];
        for dir in wanted.into_iter().flatten() {
            let mut missing: Vec<PathBuf> =
                inside(dir).ancestors().take_while(|a| !a.exists()).map(Into::into).collect();
            missing.reverse();
            for m in missing {
                fs::create_dir(&m).map_err(|e| Error::io(&m, e))?;
                made.push((m.clone(), Some(mode_of(&m)?)));
            }
        }
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("no NUL in a path");
        // A base image may bring store paths of its own (a stowage image's /bin/sh is a link
        // into them): the build's store paths are bound in beside them, one by one, rather
        // than the whole store over them.
        let image_store = inside(store_dir);
        let own = crate::layer::tree::sorted_names(&image_store)?;
        let store_binds = if own.is_empty() {
            vec![(c(store_dir), c(&image_store))]
        } else {
            let mut binds = Vec::new();
            for name in crate::layer::tree::sorted_names(store_dir)? {
                let target = image_store.join(&name);
                if name.as_bytes().starts_with(b".") || fs::symlink_metadata(&target).is_ok() {
                    continue;
                }
                let source = store_dir.join(&name);
                let is_dir = fs::metadata(&source).map_err(|e| Error::io(&source, e))?.is_dir();
                if is_dir {
                    fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
                    made.push((target.clone(), Some(mode_of(&target)?)));
                } else {
                    fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
                    made.push((target.clone(), None));
                }
                binds.push((c(&source), c(&target)));
            }
            binds
        };
        Ok(MountPoints {
            proc: c(&inside(Path::new("/proc"))),
            dev: c(&inside(Path::new("/dev"))),
            sys: has_sys.then(|| c(&inside(Path::new("/sys")))),
            store_binds,
            made,
        })
    }

    /// Removes the mount points this run made (empty again once the namespace is gone), but for
    /// the folders the script made its own: one it put something into or changed the mode of
    /// (`mkdir -p /nix/var`, `chmod 1777 /tmp` where the store's folders are) stays, as the
    /// script left it.
    fn remove(self) -> Result<()> {
        for (path, made_with) in self.made.iter().rev() {
            let removed = match made_with {
                None => fs::remove_file(path),
                Some(mode) if mode_of(path)? != *mode => continue,
                Some(_) => match fs::remove_dir(path) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => continue,
                    removed => removed,
                },
            };
            removed.map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }
}

/// The permission bits of `path` (sticky and set-id bits included).
fn mode_of(path: &Path) -> Result<u32> {
    Ok(fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?.permissions().mode() & 0o7777)
}

/// What the child failed at, reported to the parent before the script could start.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Step {
    Unshare = 1,
    IdMaps,
    Fork,
    Mounts,
    Chroot,
    Seccomp,
    SendListener,
}

impl Step {
    fn describe(code: u8) -> &'static str {
        match code {
            1 => "creating user, mount and PID namespaces (unshare; the kernel must allow unprivileged user namespaces: user.max_user_namespaces > 0)",
            2 => "mapping the build user to root in the user namespace",
            3 => "starting the namespace's first process (fork)",
            4 => "mounting the store, /dev, /sys and /proc inside the image root",
            5 => "changing root into the image root",
            6 => "installing the seccomp filter that records chown calls",
            _ => "handing the seccomp listener to the supervisor",
        }
    }
}

/// Everything the child needs, prepared before the fork: after it, the child only makes system
/// calls (another thread of this process may have held the allocator's lock when it forked).
struct ChildPlan<'a> {
    /// The shell opened, or its path inside the chroot.
    shell: Option<OwnedFd>,
    shell_path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    root: CString,
    maps: [(CString, CString); 3],
    mounts: Option<&'a MountPoints>,
    filter: Vec<libc::sock_filter>,
    // NULL-terminated pointers into argv and envp
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

fn fake_root(script: &Script, root: &Path, mounts: Option<&MountPoints>) -> Result<(Owners, i32)> {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| Error::argument(script.name, "contains a NUL byte"));
    let shell_c = cstr(script.shell.path().as_os_str().as_bytes())?;
    let shell = match script.shell {
        Shell::Path(path) => {
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(shell_c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(Error::io(path, io::Error::last_os_error()));
            }
            // SAFETY: just opened.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        Shell::Image => None,
    };
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let env: Vec<CString> =
        script.env.iter().map(|(k, v)| cstr(format!("{k}={v}").as_bytes())).collect::<Result<_>>()?;
    let mut plan = ChildPlan {
        shell,
        shell_path: shell_c,
        argv: vec![
            cstr(b"sh")?,
            cstr(b"-e")?,
            cstr(b"-c")?,
            cstr(script.text.as_bytes())?,
            cstr(script.name.as_bytes())?,
        ],
        envp: env,
        root: cstr(root.as_os_str().as_bytes())?,
        maps: [
            (cstr(b"/proc/self/setgroups")?, cstr(b"deny")?),
            (cstr(b"/proc/self/uid_map")?, cstr(format!("0 {uid} 1").as_bytes())?),
            (cstr(b"/proc/self/gid_map")?, cstr(format!("0 {gid} 1").as_bytes())?),
        ],
        mounts,
        filter: seccomp::chown_filter(),
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
    };
    plan.argv_ptrs = plan.argv.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    plan.envp_ptrs = plan.envp.iter().map(|e| e.as_ptr()).chain([std::ptr::null()]).collect();
    let mut pair = [0; 2];
    // SAFETY: a two-element array for the pair.
    if unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr())
    } < 0
    {
        return Err(Error::io("(socketpair)", io::Error::last_os_error()));
    }
    // SAFETY: both just made.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    // SAFETY: the child runs only `child`, which makes system calls and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::io("(fork)", io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(ours);
        child(&plan, theirs.as_raw_fd());
    }
    drop(theirs);
    let received = receive_listener(&ours);
    let owners = match received {
        Ok(listener) => seccomp::supervise(listener).map_err(|e| Error::io("(seccomp listener)", e)),
        Err(e) => Err(e),
    };
    let code = wait(pid)?;
    Ok((owners?, code))
}

fn receive_listener(socket: &OwnedFd) -> Result<OwnedFd> {
    let mut data = [0u8; 8];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    let mut control = [0u64; 8];
    // SAFETY: zeroed msghdr is empty; the buffers are set below and outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg describes live buffers.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(Error::io("(script supervisor)", io::Error::last_os_error()));
    }
    // SAFETY: CMSG_FIRSTHDR reads msg's control buffer, which recvmsg filled.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if n > 0 && data[0] == 0 && !cmsg.is_null() {
        // SAFETY: the child sent exactly one descriptor with SCM_RIGHTS.
        let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd) };
        // SAFETY: received just now, ours.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let errno = i32::from_ne_bytes([data[1], data[2], data[3], data[4]]);
    let step = if n > 0 { Step::describe(data[0]) } else { "starting the script (the child ended early)" };
    Err(Error::Confinement { step, source: io::Error::from_raw_os_error(errno) })
}

fn wait(pid: libc::pid_t) -> Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io("(waitpid)", e));
        }
    }
    Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) })
}

/// The child: namespaces, mounts, chroot, filter, shell. Reports a failure to the parent as
/// (step, errno) and exits; never returns.
fn child(plan: &ChildPlan, socket: RawFd) -> ! {
    let fail = |step: Step| -> ! {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0).to_ne_bytes();
        let message = [step as u8, errno[0], errno[1], errno[2], errno[3]];
        // SAFETY: system calls on our own buffers; then the child ends.
        unsafe {
            libc::send(socket, message.as_ptr().cast(), message.len(), 0);
            libc::_exit(127)
        }
    };
    // SAFETY: each call below is a system call on data prepared before the fork.
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) != 0 {
            fail(Step::Unshare);
        }
        for (file, text) in &plan.maps {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, text.as_ptr().cast(), text.as_bytes().len()) < 0 {
                fail(Step::IdMaps);
            }
            libc::close(fd);
        }
        // The first process of the new PID namespace runs the shell; this one waits for it and
        // passes its status on.
        let pid = libc::fork();
        if pid < 0 {
            fail(Step::Fork);
        }
        if pid > 0 {
            libc::close(socket);
            let mut status = 0;
            while libc::waitpid(pid, &mut status, 0) < 0 {}
            libc::_exit(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        let none = std::ptr::null::<libc::c_char>();
        if let Some(m) = plan.mounts {
            let bind = |from: *const libc::c_char, to: &CString| {
                libc::mount(from, to.as_ptr(), none, libc::MS_BIND | libc::MS_REC, std::ptr::null()) == 0
            };
            let proc = c"proc".as_ptr();
            let ok =
                libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null())
                    == 0
                    && m.store_binds.iter().all(|(from, to)| bind(from.as_ptr(), to))
                    && bind(c"/dev".as_ptr(), &m.dev)
                    && m.sys.as_ref().map_or(true, |sys| bind(c"/sys".as_ptr(), sys))
                    && libc::mount(
                        proc,
                        m.proc.as_ptr(),
                        proc,
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ) == 0;
            if !ok {
                fail(Step::Mounts);
            }
            if libc::chroot(plan.root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                fail(Step::Chroot);
            }
        } else if libc::chdir(plan.root.as_ptr()) != 0 {
            fail(Step::Chroot);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(Step::Seccomp);
        }
        let listener = match seccomp::install(&plan.filter) {
            Ok(fd) => fd,
            Err(_) => fail(Step::Seccomp),
        };
        if send_fd(socket, listener.as_raw_fd()).is_err() {
            fail(Step::SendListener);
        }
        drop(listener);
        match &plan.shell {
            Some(fd) => libc::syscall(
                libc::SYS_execveat,
                fd.as_raw_fd(),
                c"".as_ptr(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
                libc::AT_EMPTY_PATH,
            ),
            None => libc::execve(plan.shell_path.as_ptr(), plan.argv_ptrs.as_ptr(), plan.envp_ptrs.as_ptr())
                as libc::c_long,
        };
        // The supervisor has its listener and no longer reads the socket: say it on stderr,
        // which is the build log, and end as a shell that cannot run a command does.
        let reason = libc::strerror(io::Error::last_os_error().raw_os_error().unwrap_or(0));
        for part in [
            c"stowage: cannot start the shell ".as_ptr(),
            plan.shell_path.as_ptr(),
            c": ".as_ptr(),
            reason,
            c"\n".as_ptr(),
        ] {
            libc::write(2, part.cast(), libc::strlen(part));
        }
        libc::_exit(127)
    }
}

/// Sends `fd` over `socket` (SCM_RIGHTS), with a zero byte meaning "no error".
fn send_fd(socket: RawFd, fd: RawFd) -> io::Result<()> {
    let mut data = [0u8; 1];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = [0u64; 4];
    // SAFETY: zeroed msghdr is empty; the buffers are set below and outlive the call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
        if libc::sendmsg(socket, &msg, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The value of `PATH` that puts the `bin` folders of `inputs` (store paths) first, then the
/// shell's own folder.
pub fn search_path(inputs: &[String], shell: &Path) -> String {
    let mut dirs: Vec<String> = inputs.iter().map(|i| format!("{i}/bin")).collect();
    if let Some(dir) = shell.parent() {
        dirs.push(dir.to_string_lossy().into_owned());
    }
    dirs.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::owners::Inode;
    use std::os::unix::fs::MetadataExt;

    const BUSYBOX: &str = "/bin/busybox";

    fn script<'a>(name: &'static str, text: &'a str, env: &'a [(String, String)]) -> Script<'a> {
        Script { name, text, shell: Shell::Path(Path::new(BUSYBOX)), env }
    }

    fn inode(path: &Path) -> Inode {
        Inode::of(&fs::symlink_metadata(path).unwrap())
    }

    #[test]
    fn fake_root_records_owners_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let text = "mkdir -p tmp; chmod 1777 tmp; echo x > f; chown 1000:100 f; mv f g\n\
                    ln -s g l; chown -h 5:6 l; chgrp 7 tmp; [ \"$(id -u)\" = 0 ]; [ \"$0\" = fakeRootCommands ]";
        let owners = run(&script("fakeRootCommands", text, &[]), dir.path(), &Confinement::FakeRoot).unwrap();
        let root = dir.path();
        assert_eq!(owners.get(inode(&root.join("g"))), (Some(1000), Some(100)));
        assert_eq!(owners.get(inode(&root.join("l"))), (Some(5), Some(6)));
        // busybox's chgrp passes the uid it found (0); -1 would leave it unset
        assert_eq!(owners.get(inode(&root.join("tmp"))).1, Some(7));
        assert_eq!(fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
        // nothing really changed owner
        assert_eq!(fs::metadata(root.join("g")).unwrap().uid(), unsafe { libc::getuid() });
    }

    #[test]
    fn chroot_has_its_own_proc_and_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(store.join("abc-data")).unwrap();
        fs::write(store.join("abc-data/greeting"), "hello").unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        let text = format!(
            "cat {store}/abc-data/greeting > /etc/hello; [ \"$(readlink /proc/self/root)\" = / ]\n\
             [ -e /proc/self/root/etc/hello ]; [ $$ = 1 ]; [ -e /proc/1/root/etc/hello ]; [ -c /dev/null ]\n\
             chown 1000 /etc/hello; [ -d /sys/kernel ]",
            store = store.display()
        );
        let chroot = Confinement::Chroot { store_dir: store.clone() };
        let owners = run(&script("fakeRootCommands", &text, &[]), &root, &chroot).unwrap();
        assert_eq!(fs::read_to_string(root.join("etc/hello")).unwrap(), "hello");
        assert_eq!(owners.get(inode(&root.join("etc/hello"))).0, Some(1000));
        // the mount points it made are gone
        let mut left: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, ["etc"]);
    }

    #[test]
    fn folders_of_the_store_that_the_script_made_its_own_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("nix/store");
        fs::create_dir_all(&store).unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap());
        let top = store.ancestors().find(|a| a.parent() == Some(Path::new("/"))).unwrap();
        let nix = store.parent().unwrap();
        // what images do: a world-writable /tmp, Nix's state beside its store
        let text = format!("chmod 1777 {} && mkdir -p {}/var/nix", top.display(), nix.display());
        let chroot = Confinement::Chroot { store_dir: store.clone() };
        run(&script("runAsRoot", &text, &[]), &root, &chroot).unwrap();
        assert!(inside(&nix.join("var/nix")).is_dir());
        assert_eq!(fs::metadata(inside(top)).unwrap().permissions().mode() & 0o7777, 0o1777);
        // the store's own mount point is gone
        assert!(!inside(&store).exists());
    }

    #[test]
    fn failures_name_the_script_and_its_status() {
        let dir = tempfile::tempdir().unwrap();
        for confinement in [Confinement::BuildUser, Confinement::FakeRoot] {
            let err =
                run(&script("extraCommands", "echo hi; false; echo never", &[]), dir.path(), &confinement)
                    .unwrap_err()
                    .to_string();
            assert_eq!(err, "extraCommands failed (exit code 1); its output is above");
        }
        // (a fake root's shell is its namespace's process 1, which SIGKILL from inside spares)
        let err =
            run(&script("runAsRoot", "kill -9 $$", &[]), dir.path(), &Confinement::BuildUser).unwrap_err();
        assert_eq!(err.to_string(), "runAsRoot failed (killed by signal 9); its output is above");
    }

    #[test]
    fn a_shell_that_cannot_start_is_exit_code_127() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(&store).unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        // the image has no /bin/sh
        let script = Script { name: "runAsRoot", text: "true", shell: Shell::Image, env: &[] };
        let err = run(&script, &root, &Confinement::Chroot { store_dir: store }).unwrap_err();
        assert_eq!(err.to_string(), "runAsRoot failed (exit code 127); its output is above");
    }

    #[test]
    fn scripts_reach_the_shell_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let text = "printf '%s\\n' \"it's\" '$HOME' \"(a) \\\"b\\\"\" > out\necho \"$GREETING\" >> out";
        let env = [("GREETING".to_string(), "hi $there".to_string())];
        for confinement in [Confinement::BuildUser, Confinement::FakeRoot] {
            run(&script("extraCommands", text, &env), dir.path(), &confinement).unwrap();
            assert_eq!(
                fs::read_to_string(dir.path().join("out")).unwrap(),
                "it's\n$HOME\n(a) \"b\"\nhi $there\n"
            );
        }
    }
}
