//! Content digests: the sha256 of everything written through a writer or read through a reader,
//! named as image formats name them (`sha256:<hex>`).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};

/// A sha256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The lower-case hex of the digest, without the algorithm.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl TryFrom<String> for Digest {
    type Error = String;

    fn try_from(s: String) -> Result<Digest, String> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| format!("{s:?} is not a sha256 digest"))?;
        if hex.len() != 64 {
            return Err(format!("{s:?} is not a sha256 digest"));
        }
        // Checked before it is cut into pairs of bytes: a character of several bytes could be cut
        // in two, and from_str_radix takes a sign ("+a"), which would read as another digest.
        // Upper case is refused as the OCI spec refuses it: "sha256:AB…" would be written back as
        // another string than the one that was read, and a registry would not know it.
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("{s:?} is not lower-case hex"));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits");
        }
        Ok(Digest(out))
    }
}

/// A writer that hashes and counts everything on its way to `inner`.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> Self {
        DigestWriter { inner, hasher: Sha256::new(), written: 0 }
    }

    /// The inner writer, the digest and the number of bytes written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest(self.hasher.finalize().into()), self.written)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it from `inner`.
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> DigestReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> Self {
        DigestReader { inner, hasher: Sha256::new(), read: 0 }
    }

    /// The digest and the number of bytes read.
    pub fn finish(self) -> (Digest, u64) {
        (Digest(self.hasher.finalize().into()), self.read)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string(), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Digest::try_from(d.to_string()).unwrap(), d);
        assert!(Digest::try_from("md5:00".to_string()).is_err());
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (bytes, digest, n) = w.finish();
        assert_eq!((bytes, digest, n), (b"abc".to_vec(), d, 3));
        let mut r = DigestReader::new(&b"abc"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish(), (d, 3));
    }

    /// Regression (found by fuzzing registry documents): a digest of 64 bytes holding a
    /// character of two bytes panicked, as a hostile manifest, config or archive could write it;
    /// `+` signs made it read as another digest, and upper case was written back as lower case.
    #[test]
    fn digests_that_are_not_hex_are_refused() {
        let upper = Digest::of(b"abc").hex().to_uppercase();
        for hex in [format!("{}ʔ{}", "0".repeat(43), "0".repeat(19)), "+0".repeat(32), upper] {
            let text = format!("sha256:{hex}");
            assert_eq!(hex.len(), 64);
            assert_eq!(
                Digest::try_from(text.clone()).unwrap_err(),
                format!("{text:?} is not lower-case hex")
            );
            let json = format!(r#"{{"digest":"{text}","mediaType":"x","size":1}}"#);
            let err = crate::format::oci::parse::<crate::format::oci::Descriptor>("m", json.as_bytes(), "d");
            assert!(err.unwrap_err().contains("is not lower-case hex"));
        }
    }
}
