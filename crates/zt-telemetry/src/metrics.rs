//! The metric families, and typed methods to record into them.
//!
//! Label values come from bounded sets only (refusal reasons, rule names of a loaded policy,
//! served method names, configured files), so a hostile peer cannot grow the series count.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Whether a decision was enforced or only logged (a shadow policy being tried out).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Mode {
    /// The decision was enforced.
    Enforce,
    /// The decision was only recorded.
    Shadow,
}

impl Mode {
    /// `enforce` or `shadow`, as in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Shadow => "shadow",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    policy: String,
    rule: String,
    decision: &'static str,
    mode: &'static str,
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    file: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    kind: &'static str,
    subject: String,
}

/// Every metric the project records. Cheap to clone (one `Arc`); clones share the series.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    unauthenticated: Family<ReasonLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
    handshakes: Family<HandshakeLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    cert_expiry: Family<CertLabels, Gauge<i64, AtomicI64>>,
    /// The series of `cert_expiry` now set, to remove them when the set changes.
    cert_labels: std::sync::Mutex<Vec<CertLabels>>,
    cas_left_out: Family<ReasonLabels, Gauge<i64, AtomicI64>>,
    in_flight: Gauge<i64, AtomicI64>,
    connections: Gauge<i64, AtomicI64>,
    revoked_closed: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and zero series until something happens).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("zt");
        let decisions = Family::default();
        registry.register(
            "authz_decisions",
            "Authorization decisions, by policy, matched rule, decision, mode and method",
            decisions.clone(),
        );
        let unauthenticated = Family::default();
        registry.register(
            "authz_unauthenticated",
            "Requests refused before policy evaluation for lack of a valid identity, by reason",
            unauthenticated.clone(),
        );
        let refusals = Family::default();
        registry.register(
            "tls_handshake_refusals",
            "Connections refused during or right after the TLS handshake, by reason",
            refusals.clone(),
        );
        let handshakes = Family::default();
        registry.register(
            "tls_handshakes",
            "Completed mutual TLS handshakes, by kind (full, or resumed from an earlier session)",
            handshakes.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "reloads",
            "Reloads of certificates, keys, trust bundles, CRLs and policies, by file and result",
            reloads.clone(),
        );
        let cert_expiry = Family::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When a certificate in use expires (kind: own or ca), Unix seconds",
            cert_expiry.clone(),
        );
        let cas_left_out = Family::<ReasonLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "trust_bundle_cas_left_out",
            "CAs of the configured trust bundles not trusted now, by reason (expired, \
             not_yet_valid)",
            cas_left_out.clone(),
        );
        for reason in ["expired", "not_yet_valid"] {
            cas_left_out.get_or_create(&ReasonLabels { reason }).set(0);
        }
        let in_flight = Gauge::default();
        registry.register(
            "rpcs_in_flight",
            "RPCs being handled now",
            in_flight.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "tls_connections_open",
            "Authenticated connections open now",
            connections.clone(),
        );
        let revoked_closed = Counter::default();
        registry.register(
            "revoked_connections_closed",
            "Open connections closed because their peer's certificate was revoked",
            revoked_closed.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                decisions,
                unauthenticated,
                refusals,
                handshakes,
                reloads,
                cert_expiry,
                cert_labels: std::sync::Mutex::default(),
                cas_left_out,
                in_flight,
                connections,
                revoked_closed,
            }),
        }
    }

    /// Counts one authorization decision (`decision` is `allow` or `deny`; `rule` is the
    /// matched rule's name, or `<default deny>`).
    pub fn decision(
        &self,
        policy: &str,
        rule: &str,
        decision: &'static str,
        mode: Mode,
        method: &str,
    ) {
        self.inner
            .decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_owned(),
                rule: rule.to_owned(),
                decision,
                mode: mode.as_str(),
                method: method.to_owned(),
            })
            .inc();
    }

    /// Creates the series of one decision at 0, if it does not exist yet: Prometheus advises
    /// exporting every known label set from the start, so that an alert on its increase sees
    /// the first event (a series born at 1 has no increase).
    pub fn register_decision(
        &self,
        policy: &str,
        rule: &str,
        decision: &'static str,
        mode: Mode,
        method: &str,
    ) {
        let labels = DecisionLabels {
            policy: policy.to_owned(),
            rule: rule.to_owned(),
            decision,
            mode: mode.as_str(),
            method: method.to_owned(),
        };
        let _ = self.inner.decisions.get_or_create(&labels);
    }

    /// Creates the `zt_authz_unauthenticated_total` series of each of `reasons` at 0 (see
    /// [`Metrics::register_decision`]).
    pub fn register_unauthenticated_reasons(&self, reasons: &[&'static str]) {
        for &reason in reasons {
            let _ = self
                .inner
                .unauthenticated
                .get_or_create(&ReasonLabels { reason });
        }
    }

    /// Creates the `zt_tls_handshake_refusals_total` series of each of `reasons` at 0 (see
    /// [`Metrics::register_decision`]).
    pub fn register_refusal_reasons(&self, reasons: &[&'static str]) {
        for &reason in reasons {
            let _ = self.inner.refusals.get_or_create(&ReasonLabels { reason });
        }
    }

    /// Counts a request refused for lack of a valid identity.
    pub fn unauthenticated(&self, reason: &'static str) {
        self.inner
            .unauthenticated
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a connection refused at the handshake (`unknown_ca`, `expired`, `revoked`, ...).
    pub fn handshake_refused(&self, reason: &'static str) {
        self.inner
            .refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a completed handshake: a full one, or one that resumed an earlier session.
    pub fn handshake_completed(&self, resumed: bool) {
        let kind = if resumed { "resumed" } else { "full" };
        self.inner
            .handshakes
            .get_or_create(&HandshakeLabels { kind })
            .inc();
    }

    /// Counts a reload attempt of `file`.
    pub fn reload(&self, file: &str, ok: bool) {
        self.inner
            .reloads
            .get_or_create(&ReloadLabels {
                file: file.to_owned(),
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Records the certificates of one `kind` now in use (`own`: our chain's leaf; `ca`: the
    /// trusted CAs) with their expiry, replacing the previous set so rotated-out ones vanish.
    pub fn certificates_in_use(&self, kind: &'static str, certs: &[(String, i64)]) {
        let mut previous = self
            .inner
            .cert_labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for labels in previous.iter().filter(|l| l.kind == kind) {
            self.inner.cert_expiry.remove(labels);
        }
        previous.retain(|l| l.kind != kind);
        for (subject, not_after) in certs {
            let labels = CertLabels {
                kind,
                subject: subject.clone(),
            };
            self.inner
                .cert_expiry
                .get_or_create(&labels)
                .set(*not_after);
            previous.push(labels);
        }
    }

    /// Records how many CAs of the trust bundles are left out now, by `reason` (`expired`,
    /// `not_yet_valid`); a reason not given is set to 0.
    pub fn cas_left_out(&self, reasons: &[&'static str]) {
        for reason in ["expired", "not_yet_valid"] {
            let count = reasons.iter().filter(|r| **r == reason).count();
            self.inner
                .cas_left_out
                .get_or_create(&ReasonLabels { reason })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Counts an RPC as in flight until the returned guard is dropped.
    pub fn rpc_started(&self) -> InFlight {
        self.inner.in_flight.inc();
        InFlight(self.inner.in_flight.clone())
    }

    /// Counts an authenticated connection as open until the returned guard is dropped.
    pub fn connection_opened(&self) -> InFlight {
        self.inner.connections.inc();
        InFlight(self.inner.connections.clone())
    }

    /// Counts a connection closed because its peer was revoked.
    pub fn revoked_connection_closed(&self) {
        self.inner.revoked_closed.inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

/// Decrements its gauge when dropped: an RPC finished, a connection closed.
#[derive(Debug)]
pub struct InFlight(Gauge<i64, AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_appear_once_recorded_and_gauges_follow_guards() {
        let metrics = Metrics::new();
        metrics.decision(
            "ledger",
            "payments-all",
            "allow",
            Mode::Enforce,
            "/ledger.v1.Ledger/Transfer",
        );
        metrics.decision(
            "ledger",
            "payments-all",
            "allow",
            Mode::Enforce,
            "/ledger.v1.Ledger/Transfer",
        );
        metrics.handshake_refused("unknown_ca");
        let guard = metrics.rpc_started();
        let text = metrics.encode();
        assert!(text.contains(
            "zt_authz_decisions_total{policy=\"ledger\",rule=\"payments-all\",decision=\"allow\",mode=\"enforce\",method=\"/ledger.v1.Ledger/Transfer\"} 2"
        ), "{text}");
        assert!(
            text.contains("zt_tls_handshake_refusals_total{reason=\"unknown_ca\"} 1"),
            "{text}"
        );
        assert!(text.contains("zt_rpcs_in_flight 1"), "{text}");
        drop(guard);
        assert!(metrics.encode().contains("zt_rpcs_in_flight 0"));
    }

    #[test]
    fn registered_series_exist_at_zero_and_count_on() {
        let metrics = Metrics::new();
        metrics.register_refusal_reasons(&["unknown_ca", "expired"]);
        metrics.register_unauthenticated_reasons(&["revoked"]);
        metrics.register_decision("ledger", "r", "deny", Mode::Enforce, "/a.B/C");
        let text = metrics.encode();
        for line in [
            "zt_tls_handshake_refusals_total{reason=\"unknown_ca\"} 0",
            "zt_tls_handshake_refusals_total{reason=\"expired\"} 0",
            "zt_authz_unauthenticated_total{reason=\"revoked\"} 0",
            "zt_authz_decisions_total{policy=\"ledger\",rule=\"r\",decision=\"deny\",mode=\"enforce\",method=\"/a.B/C\"} 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        metrics.handshake_refused("expired");
        metrics.register_refusal_reasons(&["expired"]);
        assert!(
            metrics
                .encode()
                .contains("zt_tls_handshake_refusals_total{reason=\"expired\"} 1")
        );
    }
}
