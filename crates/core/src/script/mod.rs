//! Running customisation scripts (`extraCommands`, `fakeRootCommands`, `runAsRoot`) without
//! privilege or a virtual machine: the image root they run in ([`root`]), their confinement in
//! namespaces and a chroot ([`confine`]), and the owners they set, recorded instead of applied
//! ([`seccomp`]).

pub mod confine;
pub mod root;
pub mod seccomp;
