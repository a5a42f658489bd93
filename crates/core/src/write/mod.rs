//! Writing image files: a plan as a docker-archive or an OCI layout ([`archive`]), loaded into
//! a Docker Engine ([`docker_daemon`]), or sent wherever `stowage push` and the copy scripts
//! are told ([`deliver`]), with a progress line on stderr ([`progress`]).

pub mod archive;
pub mod deliver;
pub mod docker_daemon;
pub mod progress;
