//! What the authorization layer counts, registered into the process's [`Metrics`]:
//! `zt_authz_decisions_total{policy, rule, decision, mode, method}`,
//! `zt_authz_unauthenticated_total{reason}` and `zt_rpcs_in_flight`.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use zt_telemetry::{InFlight, Metrics};

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

/// The layer's metric families, fetched once from the registry.
#[derive(Debug, Clone)]
pub(crate) struct AuthzMetrics {
    decisions: Family<DecisionLabels, Counter>,
    unauthenticated: Family<ReasonLabels, Counter>,
    in_flight: Gauge<i64, AtomicI64>,
}

impl AuthzMetrics {
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Self {
            decisions: metrics.metric(
                "authz_decisions",
                "Authorization decisions, by policy, matched rule, decision, mode and method",
                Family::default,
            ),
            unauthenticated: metrics.metric(
                "authz_unauthenticated",
                "Requests refused before policy evaluation for lack of a valid identity, by \
                 reason",
                Family::default,
            ),
            in_flight: metrics.metric("rpcs_in_flight", "RPCs being handled now", Gauge::default),
        }
    }

    /// Counts one decision (`decision` is `allow` or `deny`; `rule` is the matched rule's
    /// name, or `<default deny>`).
    pub(crate) fn decision(
        &self,
        policy: &str,
        rule: &str,
        decision: &'static str,
        mode: Mode,
        method: &str,
    ) {
        self.decisions
            .get_or_create(&decision_labels(policy, rule, decision, mode, method))
            .inc();
    }

    /// Creates the series of one decision at 0, if it does not exist yet: Prometheus advises
    /// exporting every known label set from the start, so that an alert on its increase sees
    /// the first event (a series born at 1 has no increase).
    pub(crate) fn register_decision(
        &self,
        policy: &str,
        rule: &str,
        decision: &'static str,
        mode: Mode,
        method: &str,
    ) {
        let _ = self
            .decisions
            .get_or_create(&decision_labels(policy, rule, decision, mode, method));
    }

    /// Creates the unauthenticated series of each of `reasons` at 0.
    pub(crate) fn register_unauthenticated_reasons(&self, reasons: &[&'static str]) {
        for &reason in reasons {
            let _ = self.unauthenticated.get_or_create(&ReasonLabels { reason });
        }
    }

    /// Counts a request refused for lack of a valid identity.
    pub(crate) fn unauthenticated(&self, reason: &'static str) {
        self.unauthenticated
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts an RPC as in flight until the guard is dropped.
    pub(crate) fn rpc_started(&self) -> InFlight {
        InFlight::start(&self.in_flight)
    }
}

fn decision_labels(
    policy: &str,
    rule: &str,
    decision: &'static str,
    mode: Mode,
    method: &str,
) -> DecisionLabels {
    DecisionLabels {
        policy: policy.to_owned(),
        rule: rule.to_owned(),
        decision,
        mode: mode.as_str(),
        method: method.to_owned(),
    }
}
