//! How the agent (and the CLI) trust an `https://` server.
//!
//! Three ways, in order of preference:
//!
//! - **Pinned fingerprint** (`--server-fingerprint sha256:<hex>`): the
//!   server's end-entity certificate must hash (SHA-256 over its DER) to the
//!   pinned value. This is how agents trust a server's self-signed
//!   certificate. The pin replaces chain and name checks (the operator vouched
//!   for exactly this certificate), but the handshake signatures are still
//!   verified with the ring provider's algorithms, so only the holder of the
//!   certificate's key can complete the handshake.
//! - **A private CA** (`--tls-ca FILE`): the system roots plus the
//!   certificates of FILE, with normal WebPKI chain and name checks.
//! - **The system roots** otherwise (rustls-platform-verifier).
//!
//! rustls runs with the ring provider only; every client config is built
//! with it explicitly, so no process-wide default is needed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The SHA-256 of a DER certificate; written `sha256:<lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Parse `sha256:<64 hex digits>`. Upper case and `:` between bytes (as
    /// `openssl x509 -fingerprint -sha256` prints them) are accepted.
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let trimmed = text.trim();
        let hex_part = trimmed
            .strip_prefix("sha256:")
            .or_else(|| trimmed.strip_prefix("SHA256:"))
            .or_else(|| trimmed.strip_prefix("sha256 Fingerprint="))
            .or_else(|| trimmed.strip_prefix("SHA256 Fingerprint="))
            .ok_or_else(|| {
                format!(
                    "invalid certificate fingerprint {trimmed:?}: expected sha256:<64 hex digits>"
                )
            })?;
        let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| {
            format!("invalid certificate fingerprint {trimmed:?}: expected sha256: followed by 64 hex digits")
        })?;
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The server presented a certificate other than the pinned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinMismatch {
    pub expected: Fingerprint,
    pub presented: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server presented a certificate with fingerprint {}, but {} is pinned",
            self.presented, self.expected
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Find a [`PinMismatch`] anywhere in an error's chain (through reqwest,
/// hyper, tungstenite, `io::Error` wrappers and rustls).
pub fn find_pin_mismatch(err: &(dyn std::error::Error + 'static)) -> Option<PinMismatch> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<PinMismatch>() {
            return Some(found.clone());
        }
        if let Some(rustls::Error::Other(other)) = e.downcast_ref::<rustls::Error>()
            && let Some(found) = other.0.downcast_ref::<PinMismatch>()
        {
            return Some(found.clone());
        }
        // io::Error's source() skips the error it wraps; look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_pin_mismatch(inner)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The TLS error (certificate not trusted, handshake failure...) anywhere in
/// an error's chain, as text; `None` if the failure was not about TLS.
pub fn find_tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_tls_failure(inner)
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// How to trust an `https://` server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// Accept exactly the certificate with this fingerprint.
    pub fingerprint: Option<Fingerprint>,
    /// Also trust the CA certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read the CA certificate file {path}: {source}")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA certificate file {path} holds no usable PEM certificate{detail}")]
    BadCa { path: PathBuf, detail: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The ring provider, the only one compiled in.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Make ring the process-wide default provider, for any TLS client built
/// without an explicit configuration (reqwest without a preconfigured
/// config panics when no default is installed). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A rustls client configuration that trusts servers as `trust` says.
pub fn client_config(trust: &TlsTrust) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Setup(e.to_string()))?;
    let config = if let Some(expected) = trust.fingerprint {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier {
                expected,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        let extra_roots = match &trust.ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider)
                .map_err(|e| TlsConfigError::Setup(format!("loading the trusted roots: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = std::fs::read(path).map_err(|source| TlsConfigError::ReadCa {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::BadCa {
            path: path.to_owned(),
            detail: format!(": {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::BadCa {
            path: path.to_owned(),
            detail: String::new(),
        });
    }
    Ok(certs)
}

/// Accepts exactly one end-entity certificate, by fingerprint; verifies the
/// handshake signatures as usual.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    expected: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertVerifier {
    pub fn new(expected: Fingerprint) -> PinnedCertVerifier {
        PinnedCertVerifier {
            expected,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity.as_ref());
        if presented == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                PinMismatch {
                    expected: self.expected,
                    presented,
                },
            ))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = b"not really a certificate, but hashing does not care";

    #[test]
    fn fingerprints_print_and_parse_in_every_common_spelling() {
        let fp = Fingerprint::of_der(DER);
        let text = fp.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(Fingerprint::parse(&text).unwrap(), fp);
        let upper_colons = format!(
            "SHA256 Fingerprint={}",
            hex::encode_upper(fp.0)
                .as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(":")
        );
        assert_eq!(Fingerprint::parse(&upper_colons).unwrap(), fp);
        for bad in ["", "abcd", "sha256:abcd", "md5:00", &text[..text.len() - 1]] {
            let err = Fingerprint::parse(bad).unwrap_err();
            assert!(err.contains("sha256:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_verifier_accepts_the_pinned_certificate_only() {
        let pinned = Fingerprint::of_der(DER);
        let verifier = PinnedCertVerifier::new(pinned);
        let name = ServerName::try_from("example.invalid").unwrap();
        let now = UnixTime::now();
        let good = CertificateDer::from(DER.to_vec());
        assert!(
            verifier
                .verify_server_cert(&good, &[], &name, &[], now)
                .is_ok()
        );
        let other = CertificateDer::from(b"another certificate".to_vec());
        let err = verifier
            .verify_server_cert(&other, &[], &name, &[], now)
            .unwrap_err();
        let mismatch = find_pin_mismatch(&err).expect("the mismatch is findable");
        assert_eq!(mismatch.expected, pinned);
        assert_eq!(
            mismatch.presented,
            Fingerprint::of_der(b"another certificate")
        );
        // ...also when wrapped the way tokio-rustls and hyper wrap it.
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, err);
        assert_eq!(find_pin_mismatch(&wrapped), Some(mismatch));
        assert!(!verifier.supported_verify_schemes().is_empty());
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "nothing here").unwrap();
        let trust = TlsTrust {
            fingerprint: None,
            ca_file: Some(path),
        };
        let err = client_config(&trust).unwrap_err().to_string();
        assert!(
            err.contains("ca.pem") && err.contains("no usable PEM"),
            "{err}"
        );
        let missing = TlsTrust {
            fingerprint: None,
            ca_file: Some(dir.path().join("missing.pem")),
        };
        let err = client_config(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
