//! How to reach registries ([`Access`]): what the command line (or `pullImage`) says about
//! credentials, TLS, plain HTTP, timeouts and upload chunks, which the connection
//! ([`crate::registry::client`]), TLS ([`crate::registry::tls`]), credentials
//! ([`crate::registry::credentials`]) and uploads ([`crate::registry::repository`]) read.

use crate::registry::timeouts::Timeouts;
use crate::{Error, Result};
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
    /// The bytes of the chunks blobs are uploaded in; none: each in one request.
    pub chunk_size: Option<u64>,
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
            chunk_size: None,
        }
    }
}

/// The chunk size `--chunk-size` gives: bytes, or KiB, MiB, GiB with a suffix `K`, `M`, `G`
/// (`16M`); none for 0 (blobs in one request).
pub fn chunk_size(text: &str) -> Result<Option<u64>> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, suffix)) if suffix.is_ascii_alphabetic() => {
            let shift = match suffix.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => 64,
            };
            (&text[..at], shift)
        }
        _ => (text, 0),
    };
    let bytes =
        number.parse::<u64>().ok().filter(|_| unit < 64).and_then(|n| n.checked_mul(1 << unit)).ok_or_else(
            || {
                Error::argument(
                    "--chunk-size",
                    format!("{text:?} is not a number of bytes, with K, M or G (16M) or without"),
                )
            },
        )?;
    Ok((bytes > 0).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size("65536").unwrap(), Some(65536));
        assert_eq!(chunk_size("64K").unwrap(), Some(64 << 10));
        assert_eq!(chunk_size("16m").unwrap(), Some(16 << 20));
        assert_eq!(chunk_size("1G").unwrap(), Some(1 << 30));
        assert_eq!(chunk_size("0").unwrap(), None);
        for bad in ["", "M", "12T", "-1", "1.5M", "99999999999999999999G"] {
            let e = chunk_size(bad).unwrap_err().to_string();
            assert!(e.starts_with("argument '--chunk-size'"), "{bad}: {e}");
        }
    }
}
