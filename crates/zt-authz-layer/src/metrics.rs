//! What the authorization layer counts, registered into the process's [`Metrics`]:
//! `zt_authz_decisions_total{policy, rule, decision, mode, method}`,
//! `zt_authz_unauthenticated_total{reason}` and `zt_rpcs_in_flight`.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, PoisonError, RwLock};

use foldhash::HashMap;
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

/// One decision's labels, borrowed: what is counted, and the key its counter is found by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecisionKey<'a> {
    /// The policy's name.
    pub(crate) policy: &'a str,
    /// The matched rule's name, or `<default deny>`.
    pub(crate) rule: &'a str,
    /// `allow` or `deny`.
    pub(crate) decision: &'static str,
    pub(crate) mode: Mode,
    /// A served method's path, or `other`.
    pub(crate) method: &'a str,
}

impl DecisionKey<'_> {
    /// The counter's slots in [`KnownDecisions`]: mode, then `[allow, deny]`.
    fn slots(&self) -> (usize, usize) {
        let mode = match self.mode {
            Mode::Enforce => 0,
            Mode::Shadow => 1,
        };
        (mode, usize::from(self.decision != "allow"))
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

impl From<DecisionKey<'_>> for DecisionLabels {
    fn from(key: DecisionKey<'_>) -> Self {
        Self {
            policy: key.policy.to_owned(),
            rule: key.rule.to_owned(),
            decision: key.decision,
            mode: key.mode.as_str(),
            method: key.method.to_owned(),
        }
    }
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

    /// Counts one decision.
    pub(crate) fn decision(&self, key: DecisionKey<'_>) {
        let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(counter) = known.get(&key) {
            counter.inc();
            return;
        }
        drop(known);
        self.counter(key).inc();
    }

    /// The counter of one label set, created (and remembered) if new.
    fn counter(&self, key: DecisionKey<'_>) -> Counter {
        let counter = self
            .decisions
            .get_or_create_owned(&DecisionLabels::from(key));
        self.known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(&key, counter.clone());
        counter
    }

    /// Creates the series of one decision at 0, if it does not exist yet: Prometheus advises
    /// exporting every known label set from the start, so that an alert on its increase sees
    /// the first event (a series born at 1 has no increase).
    pub(crate) fn register_decision(&self, key: DecisionKey<'_>) {
        let _ = self.counter(key);
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

/// Decision counters by policy, mode, method and rule, with allow and deny apart. Found from
/// borrowed strings with foldhash: three lookups per request, of keys this process chose (a
/// caller's unknown method is `other`), so SipHash's flooding resistance buys nothing here.
#[derive(Debug, Default)]
struct KnownDecisions(HashMap<String, [ByMethod; 2]>);

/// Method, then rule, then `[allow, deny]`.
type ByMethod = HashMap<String, HashMap<String, [Option<Counter>; 2]>>;

impl KnownDecisions {
    fn get(&self, key: &DecisionKey<'_>) -> Option<&Counter> {
        let (mode, decision) = key.slots();
        self.0.get(key.policy)?[mode]
            .get(key.method)?
            .get(key.rule)?[decision]
            .as_ref()
    }

    fn insert(&mut self, key: &DecisionKey<'_>, counter: Counter) {
        let (mode, decision) = key.slots();
        let by_rule = self.0.entry(key.policy.to_owned()).or_default()[mode]
            .entry(key.method.to_owned())
            .or_default();
        by_rule.entry(key.rule.to_owned()).or_default()[decision] = Some(counter);
    }
}
