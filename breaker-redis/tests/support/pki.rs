//! Certificates made at test time (a CA, a server certificate for 127.0.0.1 and localhost, a
//! client certificate), written to a directory of their own, and a `redis-server` that speaks TLS
//! only. Included as `pki` beside `support` by the test files that need it (so the others do not
//! build rcgen into their binaries).

#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::support::{free_port, RedisServer};

/// A CA with a server and a client certificate it signed, in PEM, and as files in `dir`.
pub struct Pki {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub dir: PathBuf,
}

/// A leaf certificate and its key, in PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = ca("breaker test CA");
        let server = leaf(
            &ca,
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(
            &ca,
            vec!["client.test".to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let dir = std::env::temp_dir().join(format!(
            "breaker-redis-tls-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server-key.pem"), &server.key_pem).unwrap();
        Pki {
            ca_pem: ca.pem(),
            client_cert_pem: client.cert_pem,
            client_key_pem: client.key_pem,
            dir,
        }
    }

    /// Starts a server on a free port that accepts TLS connections only (`--port 0`), with the
    /// server certificate; `args` are added (`--tls-auth-clients yes`, `--requirepass ..`).
    pub fn server(&self, args: &[&str]) -> Option<RedisServer> {
        let port = free_port();
        let path = |name: &str| self.dir.join(name).to_str().unwrap().to_owned();
        let (cert, key, ca) = (path("server.pem"), path("server-key.pem"), path("ca.pem"));
        let tls_port = port.to_string();
        let mut all = vec![
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
        ];
        if !args.contains(&"--tls-auth-clients") {
            all.extend(["--tls-auth-clients", "no"]);
        }
        all.extend(args);
        RedisServer::start_with(port, &all)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed CA.
pub fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `names` that `ca` signed, for `usage`.
pub fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, ca).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}
