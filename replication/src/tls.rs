//! The cluster's certificates and the QUIC endpoints' TLS: every node presents a certificate
//! signed by the cluster CA and trusts only that CA, in both directions (mutual TLS).
//!
//! A cluster directory holds `ca.pem` and `ca.key`; a node directory holds `ca.pem`,
//! `node.pem` and `node.key`. The CA's distinguished name is fixed, so the CA can be rebuilt
//! from its key to sign more node certificates without parsing its PEM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// ALPN of the replication protocol; a peer speaking anything else is refused by TLS.
pub const ALPN: &[u8] = b"chirp-repl/1";
const CA_NAME: &str = "Chirp cluster CA";

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    params
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Creates a cluster CA in `dir` (`ca.pem`, `ca.key`); refuses to overwrite one.
pub fn create_cluster_ca(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    if dir.join("ca.key").exists() {
        return Err(Error::Tls(format!("{} already holds a CA", dir.display())));
    }
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    std::fs::write(dir.join("ca.pem"), cert.pem())?;
    write_private(&dir.join("ca.key"), &key.serialize_pem())?;
    Ok(())
}

/// Issues a certificate for node `name` signed by the CA in `ca_dir`, written to `out`
/// (`ca.pem`, `node.pem`, `node.key`). Its names: `name`, `localhost`, 127.0.0.1 and `ips`:
/// a replica checks its primary's certificate against the address it dials, so a node that
/// other machines reach needs the addresses they reach it at.
pub fn issue_node_cert(
    ca_dir: &Path,
    name: &str,
    ips: &[std::net::IpAddr],
    out: &Path,
) -> Result<()> {
    let ca_key_pem = std::fs::read_to_string(ca_dir.join("ca.key"))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    let ca = ca_params().self_signed(&ca_key)?;
    let mut params = CertificateParams::new(vec![name.to_string(), "localhost".to_string()])?;
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    for ip in std::iter::once(&loopback).chain(ips.iter().filter(|ip| **ip != loopback)) {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    std::fs::create_dir_all(out)?;
    std::fs::copy(ca_dir.join("ca.pem"), out.join("ca.pem"))?;
    std::fs::write(out.join("node.pem"), cert.pem())?;
    write_private(&out.join("node.key"), &key.serialize_pem())?;
    Ok(())
}

/// A node's TLS material, loaded from a node directory.
pub struct NodeTls {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl NodeTls {
    /// Loads `ca.pem`, `node.pem` and `node.key` from `dir`.
    pub fn load(dir: &Path) -> Result<NodeTls> {
        let certs = |file: &str| -> Result<Vec<CertificateDer<'static>>> {
            let path = dir.join(file);
            let list = CertificateDer::pem_file_iter(&path)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
            if list.is_empty() {
                return Err(Error::Tls(format!("{}: no certificate", path.display())));
            }
            Ok(list)
        };
        let key_path = dir.join("node.key");
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| Error::Tls(format!("{}: {e}", key_path.display())))?;
        Ok(NodeTls {
            ca: certs("ca.pem")?,
            chain: certs("node.pem")?,
            key,
        })
    }

    fn roots(&self) -> Result<Arc<rustls::RootCertStore>> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(Arc::new(roots))
    }

    /// The QUIC server configuration: our certificate, clients must present one from the CA.
    pub fn server_config(&self) -> Result<quinn::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            self.roots()?,
            provider.clone(),
        )
        .build()
        .map_err(|e| Error::Tls(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport());
        Ok(config)
    }

    /// The QUIC client configuration: the server must present a certificate from the CA, and
    /// we present ours.
    pub fn client_config(&self) -> Result<quinn::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::Tls(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport());
        Ok(config)
    }
}

/// The node a peer's certificate was issued for (the handshake has checked it against the
/// cluster CA): the first name of its subject alternative names but `localhost`, confirmed
/// with webpki's own name check. None if the connection presented no usable certificate.
pub fn peer_node(conn: &quinn::Connection) -> Option<String> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let leaf = certs.first()?;
    let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
    let name = cert
        .valid_dns_names()
        .find(|n| !n.eq_ignore_ascii_case("localhost"))?
        .to_string();
    let server_name = rustls::pki_types::ServerName::try_from(name.as_str()).ok()?;
    cert.verify_is_valid_for_subject_name(&server_name)
        .ok()
        .map(|()| name)
}

/// Keep-alives every second and a 3 s idle timeout: a dead or restarted peer is noticed
/// within seconds, while a healthy idle link stays up.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    if let Ok(idle) = quinn::IdleTimeout::try_from(Duration::from_secs(3)) {
        t.max_idle_timeout(Some(idle));
    }
    // Checkpoint files and catch-up batches are large: let a stream carry several MiB.
    t.stream_receive_window(quinn::VarInt::from_u32(16 << 20));
    t.receive_window(quinn::VarInt::from_u32(64 << 20));
    t.send_window(64 << 20);
    Arc::new(t)
}
