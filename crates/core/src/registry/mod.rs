//! Registries, over the OCI distribution API: the connection and its authentication handshakes
//! ([`client`]), with [`tls`] and [`credentials`], as [`access`] says, one repository's endpoints, which push and pull share
//! ([`repository`]), where a push goes ([`destination`]), and the deadlines every request is
//! held to ([`timeouts`]). What is pushed is [`crate::write::push`]'s business; what is pulled,
//! [`crate::functions::pull`]'s.

pub mod access;
pub mod client;
pub mod credentials;
pub mod destination;
pub mod repository;
pub mod timeouts;
pub mod tls;
