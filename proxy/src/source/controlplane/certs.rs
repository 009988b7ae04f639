//! The proxy's side of the control plane's CA: a fresh key pair (generated
//! here; the private key never leaves the process) and its certificate
//! signing request, and installing what comes back — the workload
//! certificate and the trust bundle — into the [`MeshIdentity`] that every
//! handshake reads, with the time to renew (half the remaining lifetime).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wasp_controlplane_api as api;

use crate::mesh::{self, MeshIdentity};

/// Renewal is never scheduled sooner than this after an issuance.
const MIN_RENEWAL: Duration = Duration::from_millis(500);

/// A key pair waiting for its certificate.
pub(super) struct PendingKey(KeyPair);

/// A new key pair and the request for it (PEM).
pub(super) fn request() -> Result<(PendingKey, api::SubscribeRequest), String> {
    let key = KeyPair::generate().map_err(|e| format!("generating a key: {e}"))?;
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| format!("making a certificate request: {e}"))?;
    let message = api::SubscribeRequest {
        kind: Some(api::subscribe_request::Kind::Csr(api::CertificateRequest {
            csr_pem: csr,
        })),
    };
    Ok((PendingKey(key), message))
}

/// Installs the trust bundle of an update when it changed.
pub(super) fn install_bundle(mesh: &MeshIdentity, pem: &str) {
    if pem.is_empty() || mesh.trust().is_some_and(|t| t.pem == pem) {
        return;
    }
    match mesh::trust_from_pem(pem, mesh.crypto()) {
        Ok(trust) => {
            tracing::info!("trust bundle installed");
            mesh.set_trust(trust);
        }
        Err(err) => tracing::warn!(error = %err, "pushed trust bundle refused"),
    }
}

/// Installs an issued certificate with the key it was requested for.
/// Returns how long until it should be renewed.
pub(super) fn install(
    mesh: &MeshIdentity,
    key: PendingKey,
    issued: &api::IssuedCertificate,
) -> Result<Duration, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("issued chain: {e}"))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.0.serialize_der()));
    let workload = mesh::workload_from_der(chain, der, mesh.crypto()).map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let remaining = (workload.not_after as f64 - now).max(0.0);
    mesh.set_workload(workload);
    Ok(Duration::from_secs_f64(remaining / 2.0).max(MIN_RENEWAL))
}
