//! `tls_server_config` to a rustls `ServerConfig` (ring provider).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme, SupportedCipherSuite,
};

use super::{ClientAuthType, Invalid, TlsServerConfig, TlsVersion};

const P: &str = "tls_server_config";

/// TLS 1.2 suites rustls offers, by their IANA names (which Go's `tls.CipherSuites()` uses too).
fn tls12_suites() -> [(&'static str, SupportedCipherSuite); 6] {
    use ring::cipher_suite as cs;
    [
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

/// TLS 1.3 suite names: accepted and without effect, as in Go, where TLS 1.3 suites are fixed.
const TLS13_SUITE_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

fn curve(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    match name {
        "X25519" => Some(ring::kx_group::X25519),
        "CurveP256" => Some(ring::kx_group::SECP256R1),
        "CurveP384" => Some(ring::kx_group::SECP384R1),
        _ => None,
    }
}

/// Builds the server config, or `None` when the section enables nothing (exporter-toolkit then
/// serves plain HTTP). Settings are checked before any file is read; the certificate, key and
/// CA files are read relative to `base_dir`.
pub(super) fn server_config(
    t: TlsServerConfig,
    base_dir: &Path,
    http2: bool,
) -> Result<Option<Arc<rustls::ServerConfig>>, Invalid> {
    let enabled = t.cert.is_some()
        || t.key.is_some()
        || t.client_ca.is_some()
        || t.cert_file.is_some()
        || t.key_file.is_some()
        || t.client_ca_file.is_some()
        || t.client_auth_type.is_some();
    if !enabled {
        return Ok(None);
    }
    if t.client_allowed_sans.is_some() {
        return Err(Invalid::at(
            format!("{P}.client_allowed_sans"),
            "not supported by inferprobe; restrict clients with client_ca_file and RequireAndVerifyClientCert",
        ));
    }
    let cert_src = Source::of(t.cert, t.cert_file, "cert", "cert_file")?;
    let key_src = Source::of(t.key.map(|k| k.0), t.key_file, "key", "key_file")?;
    let ca_src = Source::of(t.client_ca, t.client_ca_file, "client_ca", "client_ca_file")?;
    let (Some(cert_src), Some(key_src)) = (cert_src, key_src) else {
        return Err(Invalid::at(
            P,
            "TLS needs a certificate and a key: set cert_file and key_file (or cert and key)",
        ));
    };
    let client_auth = t.client_auth_type.unwrap_or(ClientAuthType::NoClientCert);
    match &ca_src {
        Some(ca) if client_auth == ClientAuthType::NoClientCert => {
            return Err(Invalid::at(
                ca.path(),
                "client CAs are configured but client_auth_type is NoClientCert; set client_auth_type (e.g. RequireAndVerifyClientCert)",
            ));
        }
        None if client_auth.verifies() => {
            return Err(Invalid::at(
                format!("{P}.client_auth_type"),
                format!(
                    "{} needs the client CA: set client_ca_file (or client_ca)",
                    client_auth.as_str()
                ),
            ));
        }
        _ => {}
    }
    let versions = versions(t.min_version, t.max_version)?;
    let base = ring::default_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(&base, t.cipher_suites.as_deref())?,
        kx_groups: kx_groups(&base, t.curve_preferences.as_deref())?,
        ..base
    });

    let (cert_pem, key_pem) = (cert_src.read(base_dir)?, key_src.read(base_dir)?);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Invalid::at(cert_src.path(), format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Invalid::at(cert_src.path(), "no PEM certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        Invalid::at(
            key_src.path(),
            format!(
                "no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {}",
                pem_error(&e)
            ),
        )
    })?;
    let roots = match &ca_src {
        None => None,
        Some(ca) => {
            let mut store = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca.read(base_dir)?) {
                let c =
                    c.map_err(|e| Invalid::at(ca.path(), format!("not a PEM certificate: {e}")))?;
                store
                    .add(c)
                    .map_err(|e| Invalid::at(ca.path(), format!("unusable CA certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err(Invalid::at(ca.path(), "no PEM certificate found"));
            }
            Some(Arc::new(store))
        }
    };

    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| Invalid::at(P, format!("inconsistent TLS settings: {e}")))?;
    let verifier: Arc<dyn ClientCertVerifier> = match (client_auth, roots) {
        (ClientAuthType::NoClientCert, _) => WebPkiClientVerifier::no_client_auth(),
        (ClientAuthType::RequestClientCert, _) => Arc::new(AnyClientCert {
            mandatory: false,
            provider: provider.clone(),
        }),
        (ClientAuthType::RequireAnyClientCert, _) => Arc::new(AnyClientCert {
            mandatory: true,
            provider: provider.clone(),
        }),
        (auth, Some(roots)) => {
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if auth == ClientAuthType::VerifyClientCertIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            let ca_path = ca_src.as_ref().map(Source::path).unwrap_or_default();
            b.build()
                .map_err(|e| Invalid::at(ca_path, format!("unusable client CA: {e}")))?
        }
        // Checked above: verifying policies have a CA.
        (_, None) => {
            return Err(Invalid::at(
                format!("{P}.client_auth_type"),
                "needs the client CA",
            ))
        }
    };
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            Invalid::at(
                key_src.path(),
                format!("certificate and key do not fit together: {e}"),
            )
        })?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Some(Arc::new(config)))
}

/// The protocol versions between `min_version` and `max_version`.
fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Invalid> {
    let min = min.unwrap_or(TlsVersion::TLS12);
    let max = max.unwrap_or(TlsVersion::TLS13);
    for (key, v) in [("min_version", min), ("max_version", max)] {
        if v < TlsVersion::TLS12 {
            return Err(Invalid::at(
                format!("{P}.{key}"),
                format!("{v:?} is not supported: rustls implements TLS12 and TLS13 only"),
            ));
        }
    }
    if min > max {
        return Err(Invalid::at(
            format!("{P}.min_version"),
            format!("{min:?} is above max_version {max:?}"),
        ));
    }
    let mut out: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if max == TlsVersion::TLS13 {
        out.push(&rustls::version::TLS13);
    }
    if min == TlsVersion::TLS12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

/// Every TLS 1.3 suite, then the listed TLS 1.2 suites in their order (all when none listed).
fn cipher_suites(
    base: &CryptoProvider,
    names: Option<&[String]>,
) -> Result<Vec<SupportedCipherSuite>, Invalid> {
    let mut out: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .copied()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .collect();
    let known = tls12_suites();
    match names {
        Some(names) if !names.is_empty() => {
            for (i, name) in names.iter().enumerate() {
                if TLS13_SUITE_NAMES.contains(&name.as_str()) {
                    continue;
                }
                let Some((_, s)) = known.iter().find(|(n, _)| n == name) else {
                    return Err(Invalid::at(
                        format!("{P}.cipher_suites[{i}]"),
                        format!(
                            "{name:?} is unknown or not supported by rustls; supported: {}",
                            known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                };
                out.push(*s);
            }
        }
        _ => out.extend(known.iter().map(|(_, s)| *s)),
    }
    Ok(out)
}

/// The listed key exchange groups in their order (the provider's when none listed).
fn kx_groups(
    base: &CryptoProvider,
    names: Option<&[String]>,
) -> Result<Vec<&'static dyn SupportedKxGroup>, Invalid> {
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(base.kx_groups.clone());
    };
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            curve(name).ok_or_else(|| {
                Invalid::at(
                    format!("{P}.curve_preferences[{i}]"),
                    format!("{name:?} is unknown or not supported by rustls; supported: X25519, CurveP256, CurveP384"),
                )
            })
        })
        .collect()
}

/// PEM given inline or as a file, with the key it was given under.
enum Source {
    Inline(&'static str, String),
    File(&'static str, PathBuf),
}

impl Source {
    fn of(
        inline: Option<String>,
        file: Option<PathBuf>,
        inline_key: &'static str,
        file_key: &'static str,
    ) -> Result<Option<Source>, Invalid> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(Invalid::at(
                format!("{P}.{file_key}"),
                format!("set either {inline_key} or {file_key}, not both"),
            )),
            (Some(text), None) => Ok(Some(Source::Inline(inline_key, text))),
            (None, Some(f)) => Ok(Some(Source::File(file_key, f))),
            (None, None) => Ok(None),
        }
    }

    fn path(&self) -> String {
        match self {
            Source::Inline(k, _) | Source::File(k, _) => format!("{P}.{k}"),
        }
    }

    fn read(&self, base_dir: &Path) -> Result<Vec<u8>, Invalid> {
        match self {
            Source::Inline(_, text) => Ok(text.as_bytes().to_vec()),
            Source::File(_, f) => {
                let path = base_dir.join(f);
                crate::fsutil::read(&path, crate::fsutil::TLS_FILE_LIMIT).map_err(|e| {
                    Invalid::at(
                        self.path(),
                        format!("cannot read {}: {}", path.display(), super::io_reason(&e)),
                    )
                })
            }
        }
    }
}

/// A PEM error without the bytes it was given (a private key must not reach a log).
fn pem_error(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error;
    match e {
        Error::NoItemsFound => "no private key in the PEM text",
        Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        Error::IllegalSectionStart { .. } => "malformed BEGIN line",
        Error::Base64Decode(_) => "bad base64",
        _ => "unreadable PEM",
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: asks for a certificate, accepts any, still
/// checks the handshake signature so the client holds the key it presents.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
