//! The store's client: plain TCP or Unix socket, or TLS for `rediss://` and `valkeys://` URLs
//! (feature `tls`), with the builder's root and client certificates checked before any
//! connection is made.

use std::fmt;

use crate::error::FleetError;

/// The builder's TLS settings, in PEM. Its `Debug` never prints them.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    pub(crate) root: Option<Vec<u8>>,
    /// Certificate chain and private key.
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: bool| if v { "<set>" } else { "<unset>" };
        f.debug_struct("TlsSettings")
            .field("root", &set(self.root.is_some()))
            .field("client", &set(self.client.is_some()))
            .finish()
    }
}

/// Whether `url` asks for TLS. Schemes are case-insensitive; redis-rs knows these two.
fn is_tls(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
}

/// The client for `url` with `tls`, or the setting at fault.
#[cfg(not(feature = "tls"))]
pub(crate) fn client(url: &str, tls: &TlsSettings) -> Result<redis::Client, FleetError> {
    const NEEDS: &str =
        "TLS needs feature `redis-tls` of `breaker` (feature `tls` of `breaker-redis`)";
    if is_tls(url) {
        return Err(FleetError::new(
            "url",
            &format!("a `rediss://` url: {NEEDS}"),
        ));
    }
    if tls.root.is_some() {
        return Err(FleetError::new("tls_root_certificate", NEEDS));
    }
    if tls.client.is_some() {
        return Err(FleetError::new("tls_client_certificate", NEEDS));
    }
    redis::Client::open(url).map_err(|e| FleetError::new("url", &e.to_string()))
}

/// The client for `url` with `tls`, or the setting at fault.
#[cfg(feature = "tls")]
pub(crate) fn client(url: &str, tls: &TlsSettings) -> Result<redis::Client, FleetError> {
    use redis::{ClientTlsConfig, ConnectionAddr, TlsCertificates};

    if !is_tls(url) {
        const PLAIN: &str = "needs a `rediss://` url (TLS); this one is plain";
        if tls.root.is_some() {
            return Err(FleetError::new("tls_root_certificate", PLAIN));
        }
        if tls.client.is_some() {
            return Err(FleetError::new("tls_client_certificate", PLAIN));
        }
        return redis::Client::open(url).map_err(|e| FleetError::new("url", &e.to_string()));
    }
    install_provider();
    check(tls)?;
    let client = if tls.root.is_none() && tls.client.is_none() {
        // redis-rs's default: the system's roots, read at each connection.
        redis::Client::open(url)
    } else {
        redis::Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: tls.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
                root_cert: tls.root.clone(),
            },
        )
    }
    .map_err(|e| FleetError::new("url", &e.to_string()))?;
    if let ConnectionAddr::TcpTls { insecure: true, .. } = client.get_connection_info().addr() {
        // Without redis-rs's `tls-rustls-insecure` every connection would fail: say so now.
        return Err(FleetError::new(
            "url",
            "`#insecure` (no certificate check) is not supported: give the store's CA with \
             `tls_root_certificate`",
        ));
    }
    Ok(client)
}

/// Makes ring the process-default rustls provider unless one is installed: redis-rs calls
/// `ClientConfig::builder()`, which panics when more than one provider is compiled in (an
/// application may build aws-lc-rs too) and none is installed. An application that installs its
/// own before building the fleet keeps it.
#[cfg(feature = "tls")]
fn install_provider() {
    use rustls::crypto::CryptoProvider;
    if CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one meanwhile: that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Parses the PEMs as redis-rs will, and the client key against its certificate, so that a
/// wrong one is an `Err` of `build` rather than a store that never connects.
#[cfg(feature = "tls")]
fn check(tls: &TlsSettings) -> Result<(), FleetError> {
    use std::sync::Arc;

    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ClientConfig, RootCertStore};

    fn certificates(
        field: &'static str,
        pem: &[u8],
    ) -> Result<Vec<CertificateDer<'static>>, FleetError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FleetError::new(field, &format!("invalid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(FleetError::new(
                field,
                "no PEM certificate in it (`-----BEGIN CERTIFICATE-----`)",
            ));
        }
        Ok(certs)
    }

    let mut roots = RootCertStore::empty();
    if let Some(pem) = &tls.root {
        for cert in certificates("tls_root_certificate", pem)? {
            roots.add(cert).map_err(|e| {
                FleetError::new(
                    "tls_root_certificate",
                    &format!("not a usable CA certificate: {e}"),
                )
            })?;
        }
    }
    if let Some((cert, key)) = &tls.client {
        const FIELD: &str = "tls_client_certificate";
        let chain = certificates(FIELD, cert)?;
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| FleetError::new(FIELD, &format!("invalid PEM private key: {e}")))?;
        // The provider redis-rs's `ClientConfig::builder()` will take.
        let provider = CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FleetError::new(FIELD, &e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| FleetError::new(FIELD, &format!("unusable certificate or key: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_schemes_are_recognised_in_any_case() {
        assert!(is_tls("rediss://h/"));
        assert!(is_tls("REDISS://h/"));
        assert!(is_tls("valkeys://u:p@h:1/"));
        assert!(!is_tls("redis://h/"));
        assert!(!is_tls("redis+unix:///tmp/s"));
        assert!(!is_tls("not a url"));
    }

    #[test]
    fn debug_never_prints_certificates_or_keys() {
        let tls = TlsSettings {
            root: Some(b"ROOT".to_vec()),
            client: Some((b"CERT".to_vec(), b"SECRET".to_vec())),
        };
        let printed = format!("{tls:?}");
        assert!(
            !printed.contains("SECRET") && !printed.contains("ROOT"),
            "{printed}"
        );
    }
}
