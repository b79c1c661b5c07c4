//! Renewing short-lived certificates before they expire.
//!
//! A workload's certificate is re-issued (same SPIFFE ID and DNS names, a fresh key) two
//! thirds into its life, as `step ca renew --daemon` and spiffe-helper do. The life is the
//! certificate's own, not the lifetime the renewal will give: a long-lived certificate being
//! replaced by short-lived ones is not renewed late, and a short one being replaced by long
//! ones is not renewed at once. The third left over is the margin for a renewal that fails
//! and is retried, and for services to reload and reconnect.
//!
//! The renewer re-issues only what this CA signed: the SPIFFE ID it puts in the new
//! certificate comes from the old one, so a workload that could write its own certificate
//! file must not be able to choose the identity it gets renewed as.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zt_identity::SpiffeId;

use crate::ca::{CLOCK_SKEW, Ca, LeafRequest};
use crate::error::PkiError;
use crate::files::{self, Bundle};
use crate::inspect::first_leaf;

/// The certificate a workload holds now, as far as renewal cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// Its SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// Its DNS SANs.
    pub dns_names: Vec<String>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

impl Installed {
    /// Reads the leaf (first certificate) of `pem`, which must be a valid X509-SVID that
    /// `ca` signed. `origin` names the file in errors.
    pub fn read(pem: &str, origin: &Path, ca: &Ca) -> Result<Self, PkiError> {
        let bad = |reason: String| PkiError::BadFile {
            path: origin.to_owned(),
            reason,
        };
        let (der, report) = first_leaf(pem, origin)?;
        let spiffe_id = match (report.spiffe_id, report.violations.first()) {
            (Some(id), None) => id,
            (_, Some(violation)) => return Err(bad(format!("not an X509-SVID: {violation}"))),
            (None, None) => return Err(bad("not an X509-SVID: no SPIFFE ID".into())),
        };
        if !ca.signed(&der) {
            return Err(bad(
                "not issued by this CA: only certificates it signed are renewed \
                 (after a CA rotation, issue a new one with `zt-ca issue`)"
                    .into(),
            ));
        }
        Ok(Self {
            spiffe_id,
            dns_names: report.dns_sans,
            serial: report.serial,
            not_before: report.not_before,
            not_after: report.not_after,
        })
    }

    /// When to renew it, seconds since the Unix epoch: two thirds into its life. Its life
    /// starts when it was issued, which for this CA is [`CLOCK_SKEW`] after `notBefore` (the
    /// CA backdates what it signs); counting the backdating in would make a certificate of a
    /// few minutes due the moment it is issued. A validity no longer than the backdating
    /// cannot be one of ours backdated, and counts whole.
    pub fn renew_at(&self) -> i64 {
        let skew = i64::try_from(CLOCK_SKEW.as_secs()).unwrap_or(0);
        let validity = self.not_after.saturating_sub(self.not_before).max(0);
        let life = if validity > skew {
            validity - skew
        } else {
            validity
        };
        self.not_after - life / 3
    }
}

/// A keystore on disk: `<base>.pem` and `<base>.key`, as `zt-ca issue --out BASE` writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keystore {
    base: PathBuf,
}

/// What [`Keystore::renew`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// A new certificate and key were written.
    Renewed {
        /// The certificate that was replaced.
        previous: Installed,
        /// The one now in place.
        current: Installed,
    },
    /// Nothing to do yet.
    NotDue {
        /// The certificate in place.
        current: Installed,
    },
}

impl Keystore {
    /// The keystore at `base` (without extension).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// The certificate file.
    pub fn cert(&self) -> PathBuf {
        files::leaf_cert(&self.base)
    }

    /// Renews the certificate with `ca` if it is due at `now` (seconds since the Unix
    /// epoch), or regardless if `force`: a new key and a certificate valid for `lifetime`,
    /// for the same SPIFFE ID and DNS names, each file replaced atomically, key first.
    pub fn renew(
        &self,
        ca: &Ca,
        lifetime: Duration,
        now: i64,
        force: bool,
    ) -> Result<Renewal, PkiError> {
        let path = self.cert();
        let installed = Installed::read(&files::read(&path)?, &path, ca)?;
        if !force && now < installed.renew_at() {
            return Ok(Renewal::NotDue { current: installed });
        }
        let leaf = ca.issue(&LeafRequest {
            spiffe_id: installed.spiffe_id.clone(),
            dns_names: installed.dns_names.clone(),
            lifetime,
        })?;
        let current = Installed::read(&leaf.cert_pem, &path, ca)?;
        let mut bundle = Bundle::new();
        bundle.add_leaf(&self.base, leaf);
        bundle.write(true)?;
        Ok(Renewal::Renewed {
            previous: installed,
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is a failed assertion")]
    use super::*;
    use zt_identity::TrustDomain;

    fn ca(domain: &str) -> Ca {
        Ca::generate(
            &TrustDomain::new(domain).unwrap(),
            Duration::from_secs(86400),
        )
        .unwrap()
    }

    fn issue(ca: &Ca, dir: &Path, lifetime: Duration) -> Keystore {
        let mut request = LeafRequest::new(SpiffeId::new("spiffe://zt.example/sa/api").unwrap());
        request.dns_names = vec!["api".into()];
        request.lifetime = lifetime;
        let base = dir.join("api");
        let mut bundle = Bundle::new();
        bundle.add_leaf(&base, ca.issue(&request).unwrap());
        bundle.write(false).unwrap();
        Keystore::new(base)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn renews_at_two_thirds_of_the_lifetime_with_the_same_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("zt.example");
        let keystore = issue(&ca, dir.path(), HOUR);
        let key_before = std::fs::read_to_string(files::leaf_key(&dir.path().join("api"))).unwrap();

        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let Renewal::NotDue { current } = keystore.renew(&ca, HOUR, now, false).unwrap() else {
            panic!("a fresh certificate is not due");
        };
        // Valid from 5 minutes ago (backdated for clock skew) to an hour from now: due once 40
        // of its 60 minutes have passed (the clock moves between issue and now).
        assert_eq!(current.not_after - current.not_before, 65 * 60);
        assert!((current.renew_at() - (now + 40 * 60)).abs() <= 2);
        let later = current.renew_at();
        let Renewal::NotDue { .. } = keystore.renew(&ca, HOUR, later - 1, false).unwrap() else {
            panic!("not due a second before two thirds");
        };
        let Renewal::Renewed { previous, current } =
            keystore.renew(&ca, HOUR, later, false).unwrap()
        else {
            panic!("due at two thirds");
        };
        assert_eq!(previous.spiffe_id, current.spiffe_id);
        assert_eq!(current.dns_names, ["api"]);
        assert_ne!(previous.serial, current.serial);
        let key_after = std::fs::read_to_string(files::leaf_key(&dir.path().join("api"))).unwrap();
        assert_ne!(
            key_before, key_after,
            "a fresh key, not only a fresh certificate"
        );
    }

    #[test]
    fn the_certificates_own_lifetime_sets_the_renewal_not_the_next_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("zt.example");
        let long = issue(&ca, dir.path(), 12 * HOUR);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // Moving from 12-hour to 1-hour certificates: the 12-hour one is due 8 hours in, two
        // thirds into its own life, not 20 minutes (a third of the new lifetime) before it ends.
        let Renewal::NotDue { current } = long.renew(&ca, HOUR, now, false).unwrap() else {
            panic!("a fresh certificate is not due");
        };
        assert!((current.renew_at() - (now + 8 * 3600)).abs() <= 2);
        let Renewal::Renewed { current, .. } =
            long.renew(&ca, HOUR, current.renew_at(), false).unwrap()
        else {
            panic!("due two thirds into its own life");
        };
        assert_eq!(
            current.not_after - current.not_before,
            65 * 60,
            "renewed for an hour"
        );
    }

    #[test]
    fn refuses_to_renew_what_another_ca_signed() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = issue(&ca("zt.example"), dir.path(), HOUR);
        let other = ca("zt.example");
        let err = keystore.renew(&other, HOUR, 0, true).unwrap_err();
        assert!(err.to_string().contains("not issued by this CA"), "{err}");
        assert!(err.to_string().contains("api.pem"), "{err}");
    }
}
