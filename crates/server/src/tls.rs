//! TLS for every listener (`server.tls_cert_file`, `server.tls_key_file`): the certificate chain
//! and key are read once at start-up into one rustls configuration that all listeners share.
//! ALPN offers `h2` then `http/1.1`, so gRPC clients (which insist on `h2`) and HTTP/1 clients
//! both connect. The crypto provider is aws-lc-rs, the one rustls is already built with for the
//! object-store clients.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Builds the acceptor from PEM files, with errors that name the file and what is wrong.
pub fn acceptor(cert_path: &str, key_path: &str) -> anyhow::Result<TlsAcceptor> {
    let mut chain = Vec::new();
    for certificate in CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("failed to read `server.tls_cert_file` `{cert_path}`"))?
    {
        chain.push(certificate.with_context(|| {
            format!("`server.tls_cert_file` `{cert_path}` holds an unreadable PEM certificate")
        })?);
    }
    if chain.is_empty() {
        bail!("`server.tls_cert_file` `{cert_path}` holds no PEM `CERTIFICATE` block");
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| {
        anyhow!(
            "`server.tls_key_file` `{key_path}`: no usable PEM private key \
             (PKCS#8, PKCS#1 or SEC1): {error}"
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!("`server.tls_key_file` `{key_path}` does not fit `server.tls_cert_file` `{cert_path}`")
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
