//! What the TLS layer counts: handshakes, refusals, open connections, connections closed for
//! revocation, and the expiry of the certificates in use. Registered into the process's
//! [`Metrics`] under `zt_tls_*` and `zt_certificate_*` / `zt_trust_bundle_*`.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use zt_telemetry::{InFlight, Metrics};

use crate::ServerTls;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    kind: &'static str,
    subject: String,
}

/// The acceptor's counters, fetched once from the registry.
#[derive(Debug, Clone)]
pub(crate) struct AcceptMetrics {
    refusals: Family<ReasonLabels, Counter>,
    handshakes: Family<HandshakeLabels, Counter>,
    connections: Gauge<i64, AtomicI64>,
    revoked_closed: Counter<u64, AtomicU64>,
}

impl AcceptMetrics {
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Self {
            refusals: metrics.metric(
                "tls_handshake_refusals",
                "Connections refused during or right after the TLS handshake, by reason",
                Family::default,
            ),
            handshakes: metrics.metric(
                "tls_handshakes",
                "Completed mutual TLS handshakes, by kind (full, or resumed from an earlier \
                 session)",
                Family::default,
            ),
            connections: metrics.metric(
                "tls_connections_open",
                "Authenticated connections open now",
                Gauge::default,
            ),
            revoked_closed: metrics.metric(
                "revoked_connections_closed",
                "Open connections closed because their peer's certificate was revoked",
                Counter::default,
            ),
        }
    }

    /// Creates the refusal series of each of `reasons` at 0: an alert on an increase then
    /// sees the first refusal (a series born at 1 has no increase).
    pub(crate) fn register_refusal_reasons(&self, reasons: &[&'static str]) {
        for &reason in reasons {
            let _ = self.refusals.get_or_create(&ReasonLabels { reason });
        }
    }

    /// Counts a connection refused at the door or the handshake (`unknown_ca`, `expired`, ...).
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a completed handshake: a full one, or one that resumed an earlier session.
    pub(crate) fn completed(&self, resumed: bool) {
        let kind = if resumed { "resumed" } else { "full" };
        self.handshakes
            .get_or_create(&HandshakeLabels { kind })
            .inc();
    }

    /// Counts an authenticated connection as open until the guard is dropped.
    pub(crate) fn opened(&self) -> InFlight {
        InFlight::start(&self.connections)
    }

    /// Counts a connection closed because its peer was revoked.
    pub(crate) fn revoked_closed(&self) {
        self.revoked_closed.inc();
    }
}

impl ServerTls {
    /// Publishes, into `metrics`, the expiry of the material in use now:
    /// `zt_certificate_expiry_timestamp_seconds{kind, subject}` (Unix seconds) for our leaf
    /// (`kind="own"`, subject: its SPIFFE ID) and every trusted CA (`kind="ca"`, its subject),
    /// and `zt_trust_bundle_cas_left_out{reason}` for the CAs of the bundles not trusted now
    /// (`expired`, `not_yet_valid`). Call it after loading and after each reload: it replaces
    /// the previous figures, so rotated-out certificates vanish.
    pub fn publish_expiry(&self, metrics: &Metrics) {
        let expiry: Family<CertLabels, Gauge<i64, AtomicI64>> = metrics.metric(
            "certificate_expiry_timestamp_seconds",
            "When a certificate in use expires (kind: own or ca), Unix seconds",
            Family::default,
        );
        let left_out: Family<ReasonLabels, Gauge<i64, AtomicI64>> = metrics.metric(
            "trust_bundle_cas_left_out",
            "CAs of the configured trust bundles not trusted now, by reason (expired, \
             not_yet_valid)",
            Family::default,
        );
        let material = self.current();
        let own = &material.keystore;
        let cas = material.truststore.cas();
        expiry.clear();
        let labels = CertLabels {
            kind: "own",
            subject: own.spiffe_id().to_string(),
        };
        expiry.get_or_create(&labels).set(own.not_after());
        for ca in cas {
            let labels = CertLabels {
                kind: "ca",
                subject: ca.subject.clone(),
            };
            expiry.get_or_create(&labels).set(ca.not_after);
        }
        for reason in crate::store::LEFT_OUT_REASONS {
            let count = material
                .truststore
                .left_out()
                .iter()
                .filter(|ca| ca.reason.reason() == reason)
                .count();
            left_out
                .get_or_create(&ReasonLabels { reason })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }
}
