//! What the authorization layer counts, registered into the process's [`Metrics`]:
//! `zt_authz_decisions_total{policy, rule, decision, mode, method}`,
//! `zt_authz_unauthenticated_total{reason}` and `zt_rpcs_in_flight`.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, PoisonError, RwLock};

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
    /// The decision counters created so far, found from borrowed label values: counting a
    /// decision builds no label set (three strings) and takes no family lock.
    known: Arc<RwLock<KnownDecisions>>,
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
            known: Arc::default(),
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
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(counter) = known.get(policy, rule, decision, mode, method) {
            counter.inc();
            return;
        }
        drop(known);
        self.counter(policy, rule, decision, mode, method).inc();
    }

    /// The counter of one label set, created (and remembered) if new.
    fn counter(
        &self,
        policy: &str,
        rule: &str,
        decision: &'static str,
        mode: Mode,
        method: &str,
    ) -> Counter {
        let labels = decision_labels(policy, rule, decision, mode, method);
        let counter = self.decisions.get_or_create_owned(&labels);
        self.known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(policy, rule, decision, mode, method, counter.clone());
        counter
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
        let _ = self.counter(policy, rule, decision, mode, method);
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

/// Decision counters by policy, mode, method and rule, with allow and deny apart.
#[derive(Debug, Default)]
struct KnownDecisions(HashMap<String, [ByMethod; 2]>);

/// Method, then rule, then `[allow, deny]`.
type ByMethod = HashMap<String, HashMap<String, [Option<Counter>; 2]>>;

fn slots(mode: Mode, decision: &str) -> (usize, usize) {
    let mode = match mode {
        Mode::Enforce => 0,
        Mode::Shadow => 1,
    };
    (mode, usize::from(decision != "allow"))
}

impl KnownDecisions {
    fn get(
        &self,
        policy: &str,
        rule: &str,
        decision: &str,
        mode: Mode,
        method: &str,
    ) -> Option<&Counter> {
        let (mode, decision) = slots(mode, decision);
        self.0.get(policy)?[mode].get(method)?.get(rule)?[decision].as_ref()
    }

    fn insert(
        &mut self,
        policy: &str,
        rule: &str,
        decision: &str,
        mode: Mode,
        method: &str,
        counter: Counter,
    ) {
        let (mode, decision) = slots(mode, decision);
        let by_rule = self.0.entry(policy.to_owned()).or_default()[mode]
            .entry(method.to_owned())
            .or_default();
        by_rule.entry(rule.to_owned()).or_default()[decision] = Some(counter);
    }
}
