//! Writing images: a plan as a docker-archive or an OCI layout ([`archive`], the layouts'
//! documents in [`layout`]), loaded into a
//! Docker Engine ([`docker_daemon`]), pushed to a registry ([`push`], with its cache of
//! compressed layer digests, [`blob_cache`], and its record of where blobs went, for mounts,
//! [`mount_record`]; what goes beside an image, [`attach`]), or sent wherever `stowage push` and the copy
//! scripts are told ([`deliver`]), with a progress line on stderr ([`progress`]).

pub mod archive;
pub mod attach;
pub mod blob_cache;
pub mod deliver;
pub mod docker_daemon;
pub mod layout;
pub mod mount_record;
pub mod progress;
pub mod push;
