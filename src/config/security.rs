//! The TLS section (client-go `config/security.go`).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tikv_layers::Error;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::invalid;

/// TLS material for connections to PD and TiKV (client-go `config.Security`; the default is
/// no TLS).
///
/// TLS is on when [`cluster_ssl_ca`](Self::cluster_ssl_ca) is set. The client certificate and
/// key are optional (for servers that do not require client authentication) but come as a
/// pair.
///
/// ```
/// use tikv::config::Security;
///
/// let security = Security::default()
///     .with_cluster_ssl_ca("/etc/tikv/ca.pem")
///     .with_cluster_ssl_cert("/etc/tikv/client.pem")
///     .with_cluster_ssl_key("/etc/tikv/client-key.pem");
/// assert!(security.is_tls_enabled());
/// assert!(security.validate().is_ok());
/// assert!(!tikv::config::Security::default().is_tls_enabled());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Security {
    /// PEM file with the CA certificate(s) that signed the servers' certificates (client-go
    /// `ClusterSSLCA`; "" there means unset).
    pub cluster_ssl_ca: Option<PathBuf>,
    /// PEM file with this client's certificate chain (client-go `ClusterSSLCert`).
    pub cluster_ssl_cert: Option<PathBuf>,
    /// PEM file with this client's private key (client-go `ClusterSSLKey`).
    pub cluster_ssl_key: Option<PathBuf>,
    /// Common names a peer certificate may carry (client-go `ClusterVerifyCN`). It restricts
    /// which clients a *server* accepts; like client-go, [`to_tls_config`](Self::to_tls_config)
    /// does not apply it. Default empty.
    pub cluster_verify_cn: Vec<String>,
}

impl Security {
    /// A TLS section with all three files set (client-go `NewSecurity`).
    ///
    /// ```
    /// let s = tikv::config::Security::new("ca.pem", "cert.pem", "key.pem", vec!["tikv".into()]);
    /// assert_eq!(s.cluster_verify_cn, ["tikv"]);
    /// ```
    pub fn new(
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        verify_cn: Vec<String>,
    ) -> Self {
        Security {
            cluster_ssl_ca: Some(ca.into()),
            cluster_ssl_cert: Some(cert.into()),
            cluster_ssl_key: Some(key.into()),
            cluster_verify_cn: verify_cn,
        }
    }

    /// Sets [`cluster_ssl_ca`](Self::cluster_ssl_ca).
    #[must_use]
    pub fn with_cluster_ssl_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.cluster_ssl_ca = Some(path.into());
        self
    }

    /// Sets [`cluster_ssl_cert`](Self::cluster_ssl_cert).
    #[must_use]
    pub fn with_cluster_ssl_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.cluster_ssl_cert = Some(path.into());
        self
    }

    /// Sets [`cluster_ssl_key`](Self::cluster_ssl_key).
    #[must_use]
    pub fn with_cluster_ssl_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.cluster_ssl_key = Some(path.into());
        self
    }

    /// Sets [`cluster_verify_cn`](Self::cluster_verify_cn).
    #[must_use]
    pub fn with_cluster_verify_cn(mut self, names: Vec<String>) -> Self {
        self.cluster_verify_cn = names;
        self
    }

    /// Whether connections use TLS, i.e. a CA file is configured.
    pub fn is_tls_enabled(&self) -> bool {
        self.cluster_ssl_ca.is_some()
    }

    /// Checks the combination of paths without touching the file system: the certificate
    /// and the key must be set together, and only together with a CA.
    ///
    /// client-go silently ignores a lone certificate or key, and a certificate without a CA
    /// (it then connects without TLS); this client rejects those, since they are almost
    /// certainly a mistake.
    pub fn validate(&self) -> Result<(), Error> {
        match (&self.cluster_ssl_cert, &self.cluster_ssl_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "security.cluster_ssl_key",
                    "must be set when cluster_ssl_cert is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "security.cluster_ssl_cert",
                    "must be set when cluster_ssl_key is set",
                ));
            }
            (Some(_), Some(_)) if self.cluster_ssl_ca.is_none() => {
                return Err(invalid(
                    "security.cluster_ssl_ca",
                    "must be set when a client certificate and key are set",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads the PEM files and builds the tonic TLS configuration for PD and TiKV channels
    /// (client-go `Security.ToTLSConfig`). Returns `Ok(None)` when TLS is off (no CA).
    ///
    /// The files are read with `tokio::fs`, so this never blocks the runtime; call it once
    /// while building the client (it needs a Tokio runtime). The CA file must hold at least
    /// one certificate, the certificate file at least one certificate and the key file a
    /// private key (PKCS#1, PKCS#8 or SEC1). A missing or unreadable file, or one without the
    /// expected PEM content, is [`ErrorDetail::InvalidConfig`](tikv_layers::ErrorDetail)
    /// naming the field (`security.cluster_ssl_ca`, ...) and the path, with the I/O error as
    /// its source.
    ///
    /// Differences from client-go: the key pair is read once here, whereas client-go re-reads
    /// it on every handshake (so a rotated certificate needs a new client), and it is not
    /// checked that the key matches the certificate until the first handshake.
    /// [`cluster_verify_cn`](Self::cluster_verify_cn) is not applied, as in client-go.
    pub async fn to_tls_config(&self) -> Result<Option<ClientTlsConfig>, Error> {
        self.validate()?;
        let Some(ca_path) = &self.cluster_ssl_ca else {
            return Ok(None);
        };
        let ca = read_pem("security.cluster_ssl_ca", ca_path).await?;
        require_certificate("security.cluster_ssl_ca", ca_path, &ca)?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let (Some(cert_path), Some(key_path)) = (&self.cluster_ssl_cert, &self.cluster_ssl_key) {
            let cert = read_pem("security.cluster_ssl_cert", cert_path).await?;
            require_certificate("security.cluster_ssl_cert", cert_path, &cert)?;
            let key = read_pem("security.cluster_ssl_key", key_path).await?;
            if let Err(e) = PrivateKeyDer::from_pem_slice(&key) {
                return Err(invalid(
                    "security.cluster_ssl_key",
                    format!("{} holds no PEM private key", key_path.display()),
                )
                .with_source(e));
            }
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(Some(tls))
    }
}

/// Reads a whole PEM file, mapping I/O failures to a config error naming `field`.
async fn read_pem(field: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    tokio::fs::read(path).await.map_err(|e| {
        invalid(field, format!("could not read {}: {e}", path.display())).with_source(e)
    })
}

/// Fails unless `pem` holds at least one well-formed certificate.
fn require_certificate(field: &'static str, path: &Path, pem: &[u8]) -> Result<(), Error> {
    let mut found = false;
    for cert in CertificateDer::pem_slice_iter(pem) {
        if let Err(e) = cert {
            return Err(invalid(
                field,
                format!("{} holds a malformed PEM certificate", path.display()),
            )
            .with_source(e));
        }
        found = true;
    }
    if !found {
        return Err(invalid(
            field,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(())
}
