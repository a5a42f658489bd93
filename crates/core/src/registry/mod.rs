//! Registries, over the OCI distribution API: the connection (TLS, credentials,
//! authentication) ([`client`]), one repository's endpoints, which push and pull share
//! ([`repository`]), where a push goes ([`destination`]), the deadlines every request is held to ([`timeouts`]), and `stowage push`
//! ([`push`]) with its cache of compressed layer digests ([`blob_cache`]). `pullImage` is a
//! library function: [`crate::functions::pull`].

pub mod blob_cache;
pub mod client;
pub mod destination;
pub mod push;
pub mod repository;
pub mod timeouts;
