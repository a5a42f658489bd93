//! TLS for registries: the system's CA store, Mozilla's roots (built in, for Nix's sandbox,
//! which has no CA store) and the CAs of `--cert-dir` (or, by default,
//! `/etc/containers/certs.d/HOST/` and `/etc/docker/certs.d/HOST/`); or no verification, when
//! asked (`--tls-verify=false`).

use crate::registry::access::Access;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS settings for `host`.
pub(crate) fn tls_config(host: &str, access: &Access) -> std::result::Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if !access.tls_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    // A machine without a CA store (Nix's sandbox) still has the built-in roots.
    if let Ok(native) = rustls_native_certs::load_native_certs() {
        roots.add_parsable_certificates(native);
    }
    let dirs: Vec<PathBuf> = match &access.cert_dir {
        Some(dir) => vec![dir.clone()],
        None => ["/etc/containers/certs.d", "/etc/docker/certs.d"]
            .iter()
            .map(|d| Path::new(d).join(host))
            .collect(),
    };
    for dir in dirs {
        for file in ca_files(&dir, access.cert_dir.is_some())? {
            let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| format!("{}: not PEM certificates: {e:?}", file.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: holds no PEM certificate", file.display()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The CA files of `--cert-dir` (`*.crt` in a folder, or the file itself); a default folder
/// that does not exist (`given` false) has none.
fn ca_files(path: &Path, given: bool) -> std::result::Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(_) if !given => return Ok(Vec::new()),
        Err(e) => return Err(format!("--cert-dir {}: {e}", path.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    files.sort();
    Ok(files)
}

/// `--tls-verify=false`: any certificate is accepted (the handshake's signatures are still
/// checked, so the connection is encrypted to whoever holds the certificate's key).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_cert_dirs_are_named() {
        let missing = Access { cert_dir: Some("/nonexistent/certs".into()), ..Access::default() };
        assert!(tls_config("h", &missing).unwrap_err().starts_with("--cert-dir /nonexistent/certs: "));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.crt"), "not a certificate").unwrap();
        let bad = Access { cert_dir: Some(dir.path().into()), ..Access::default() };
        assert!(tls_config("h", &bad).unwrap_err().contains("bad.crt: holds no PEM certificate"));
    }
}
