//! How to reach registries ([`Access`]): what the command line (or `pullImage`) says about
//! credentials, TLS, plain HTTP and timeouts, which the connection ([`crate::registry::client`]),
//! TLS ([`crate::registry::tls`]) and credentials ([`crate::registry::credentials`]) read.

use crate::registry::timeouts::Timeouts;
use std::path::PathBuf;

/// How to reach registries: what the command line says about TLS and credentials.
#[derive(Debug, Clone)]
pub struct Access {
    /// `USER:PASSWORD`, ahead of any auth file.
    pub creds: Option<String>,
    /// An auth file to read credentials from, ahead of the usual ones.
    pub auth_file: Option<PathBuf>,
    /// Whether certificates are verified.
    pub tls_verify: bool,
    /// A folder of CA certificates (`*.crt`), or one file of them.
    pub cert_dir: Option<PathBuf>,
    /// Speak plain HTTP to any host.
    pub plain_http: bool,
    /// How long requests may take.
    pub timeouts: Timeouts,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            creds: None,
            auth_file: None,
            tls_verify: true,
            cert_dir: None,
            plain_http: false,
            timeouts: Timeouts::default(),
        }
    }
}
