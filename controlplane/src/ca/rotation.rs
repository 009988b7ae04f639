//! Root rotation with overlap, kept in the store so that it survives a
//! restart of `wasp-cp`: the new root (certificate and key), the roots it
//! replaces, when the rotation started (wall clock) and the overlap. The
//! phase is a function of the time since the start: until `overlap` the old
//! root signs and both are trusted; then the new root signs (and becomes
//! the stored root) while both are still trusted; after twice `overlap`
//! only the new root is trusted and the rotation is over.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{CaError, Signer, material};
use crate::store::Store;

/// Store key of the rotation in progress (JSON; empty when none).
pub(super) const ROTATION: &str = "ca/rotation.json";

/// A rotation as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct RotationRecord {
    /// The roots trusted before the rotation (PEM), trusted until it ends.
    pub previous_bundle_pem: String,
    /// The new root (PEM).
    pub next_cert_pem: String,
    /// The new root's private key (PEM, PKCS#8).
    pub next_key_pem: String,
    /// Start of the rotation, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// The overlap, milliseconds.
    pub overlap_ms: u64,
}

impl RotationRecord {
    /// The rotation stored in `store`, if one is.
    pub fn load(store: &dyn Store) -> Result<Option<Self>, CaError> {
        match store.meta(ROTATION)? {
            Some(bytes) if !bytes.is_empty() => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| material(&format!("stored root rotation '{ROTATION}'"), e)),
            _ => Ok(None),
        }
    }

    /// Keeps this rotation in `store`.
    pub fn save(&self, store: &dyn Store) -> Result<(), CaError> {
        let json = serde_json::to_vec(self).map_err(|e| material("root rotation", e))?;
        Ok(store.put_meta(ROTATION, &json)?)
    }

    /// Forgets the stored rotation (it is over).
    pub fn clear(store: &dyn Store) -> Result<(), CaError> {
        Ok(store.put_meta(ROTATION, b"")?)
    }

    /// When it started.
    pub fn started(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.started_unix_ms)
    }

    /// The overlap.
    pub fn overlap(&self) -> Duration {
        Duration::from_millis(self.overlap_ms)
    }

    /// Whether it is over at `now`: the old roots left the bundle.
    pub fn is_over(&self, now: SystemTime) -> bool {
        elapsed(self.started(), now) >= self.overlap() * 2
    }
}

/// Time from `start` to `now`; zero if the clock reads earlier.
pub(super) fn elapsed(start: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(start).unwrap_or_default()
}

/// Where a rotation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The old root signs; both are trusted.
    OldSigns,
    /// The new root signs; both are trusted.
    NewSigns,
    /// The new root signs and is the only one trusted.
    Over,
}

/// A root rotation in progress.
pub(super) struct Rotation {
    /// The new root.
    pub next: Signer,
    /// What is stored, to promote the new root and to resume.
    pub record: RotationRecord,
    /// The new root is the stored root.
    pub promoted: std::sync::atomic::AtomicBool,
    /// The rotation is over and forgotten by the store.
    pub finished: std::sync::atomic::AtomicBool,
}

impl Rotation {
    /// A rotation from its record; `promoted` when the stored root is the
    /// new one already.
    pub fn from_record(record: RotationRecord, promoted: bool) -> Result<Self, CaError> {
        let next = Signer::new(
            record.next_cert_pem.clone(),
            &record.next_key_pem,
            record.next_cert_pem.clone(),
        )?;
        Ok(Self {
            next,
            record,
            promoted: std::sync::atomic::AtomicBool::new(promoted),
            finished: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The phase at `now`.
    pub fn phase(&self, now: SystemTime) -> Phase {
        let elapsed = elapsed(self.record.started(), now);
        let overlap = self.record.overlap();
        if elapsed < overlap {
            Phase::OldSigns
        } else if elapsed < overlap * 2 {
            Phase::NewSigns
        } else {
            Phase::Over
        }
    }

    /// The bundle while both roots are trusted.
    pub fn both(&self) -> String {
        format!(
            "{}{}",
            self.record.previous_bundle_pem, self.next.bundle_pem
        )
    }
}
