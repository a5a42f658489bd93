//! Signatures of pushed images in the form cosign signs and verifies with a key: an ECDSA
//! P-256 signature (SHA-256, ASN.1 DER, base64) of a "simple signing" payload that names the
//! image's repository and manifest digest. Keys are PEM files: a PKCS#8 private key
//! (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`) to sign, its public key
//! (`openssl pkey -pubout`, or cosign's `cosign.pub`) to verify.
//!
//! Where a signature is kept in a registry (the `sha256-<digest>.sig` tag) is
//! [`crate::write::attach`]'s business; this module only makes and checks the bytes.

use crate::format::digest::Digest;
use crate::{Error, Result};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde_json::{json, Value};
use std::path::Path;

/// The media type of a simple-signing payload, as cosign stores it.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// The annotation of a payload's layer that holds its signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// What a simple-signing payload says of its image.
const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The DER prefix of a P-256 public key (SubjectPublicKeyInfo: id-ecPublicKey, prime256v1)
/// before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The payload signed for the manifest `digest` of an image in `repository`
/// (`host[:port]/name`): cosign's bytes, compact JSON in its key order.
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    // (serde_json sorts keys; cosign's order is its struct's, which happens to be sorted too)
    let payload = json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest.to_string() },
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    });
    payload.to_string().into_bytes()
}

/// The image digest a payload names, if it is a simple-signing payload.
pub fn signed_digest(payload: &[u8]) -> Option<String> {
    let payload: Value = serde_json::from_slice(payload).ok()?;
    (payload["critical"]["type"] == PAYLOAD_TYPE)
        .then(|| payload["critical"]["image"]["docker-manifest-digest"].as_str().map(str::to_owned))
        .flatten()
}

/// A private key to sign with, from `--sign-key`.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SigningKey {
    /// Reads the PEM private key at `path` (the argument `arg`).
    pub fn read(path: &Path, arg: &str) -> Result<SigningKey> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |problem: String| Error::argument(arg, format!("{}: {problem}", path.display()));
        if contains(&text, b"ENCRYPTED") {
            return Err(bad(
                "is an encrypted private key; stowage signs with an unencrypted PKCS#8 P-256 key \
                 (`openssl pkcs8 -topk8 -nocrypt` decrypts one)"
                    .into(),
            ));
        }
        if contains(&text, b"BEGIN EC PRIVATE KEY") {
            return Err(bad("is a SEC1 key (BEGIN EC PRIVATE KEY); give it as PKCS#8: \
                 `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8.pem`"
                .into()));
        }
        let der = PrivatePkcs8KeyDer::from_pem_slice(&text)
            .map_err(|e| bad(format!("is not a PEM private key (BEGIN PRIVATE KEY): {e}")))?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der.secret_pkcs8_der(), &rng)
            .map_err(|e| bad(format!("is not an ECDSA P-256 private key: {e}")))?;
        Ok(SigningKey { pair, rng })
    }

    /// The signature of `payload`: base64 of its ASN.1 DER encoding.
    pub fn sign(&self, payload: &[u8]) -> Result<String> {
        let signature = self
            .pair
            .sign(&self.rng, payload)
            .map_err(|_| Error::Delivery("signing failed: the system's random source failed".into()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(signature.as_ref()))
    }

    /// Its public key, to check signatures it made.
    pub fn public_key(&self) -> PublicKey {
        PublicKey { point: self.pair.public_key().as_ref().to_vec() }
    }
}

/// A public key to verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The uncompressed point.
    point: Vec<u8>,
}

impl PublicKey {
    /// Reads the PEM public key at `path` (the argument `arg`).
    pub fn read(path: &Path, arg: &str) -> Result<PublicKey> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |problem: &str| Error::argument(arg, format!("{}: {problem}", path.display()));
        let der = SubjectPublicKeyInfoDer::from_pem_slice(&text)
            .map_err(|_| bad("is not a PEM public key (BEGIN PUBLIC KEY)"))?;
        match der.as_ref().strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == 65 && point[0] == 4 => Ok(PublicKey { point: point.to_vec() }),
            _ => Err(bad("is not an ECDSA P-256 public key")),
        }
    }

    /// Whether `signature` (base64 of ASN.1 DER) is this key's signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &str) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point).verify(payload, &signature).is_ok()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 key made by `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`,
    /// for the tests only.
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsE4GjQXVHI9nuTg4
bjenKGut9xgDBWtchlxY5JqqsNahRANCAASoqB9kQA6L7RanZelfGLAubl7SoqC2
sTa4f92xufm8a2ECuSBIh/uxEF0Ks6awGSoyPfstIXuiwDBwGpeaIJRp
-----END PRIVATE KEY-----
";

    #[test]
    fn payloads_are_cosigns() {
        let digest = Digest([1; 32]);
        let payload = payload("127.0.0.1:5000/team/app", &digest);
        assert_eq!(
            String::from_utf8(payload.clone()).unwrap(),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/team/app\"}},\
                 \"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\"type\":\"cosign container image signature\"}},\
                 \"optional\":null}}"
            )
        );
        assert_eq!(signed_digest(&payload), Some(digest.to_string()));
        assert_eq!(signed_digest(b"{}"), None);
    }

    #[test]
    fn signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(&file, KEY).unwrap();
        let key = SigningKey::read(&file, "--sign-key").unwrap();
        let signature = key.sign(b"payload").unwrap();
        assert!(key.public_key().verifies(b"payload", &signature));
        assert!(!key.public_key().verifies(b"payloaD", &signature));
        assert!(!key.public_key().verifies(b"payload", "not base64!"));

        std::fs::write(&file, KEY.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY")).unwrap();
        let err = SigningKey::read(&file, "--sign-key").err().unwrap().to_string();
        assert!(err.contains("is an encrypted private key"), "{err}");
        std::fs::write(&file, "garbage").unwrap();
        let err = SigningKey::read(&file, "--sign-key").err().unwrap().to_string();
        assert!(err.contains("'--sign-key'") && err.contains("is not a PEM private key"), "{err}");
        let err = PublicKey::read(&file, "--key").unwrap_err().to_string();
        assert!(err.contains("is not a PEM public key"), "{err}");
    }
}
