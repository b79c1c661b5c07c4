//! The registry the crates record their metrics into.
//!
//! Each crate defines the metric families it records, next to the code that records them
//! (`zt_tls` its handshake counters, `zt_authz_layer` its decisions, `zt_reload` its
//! reloads), and fetches them from one shared [`Metrics`] by name. That registry is what the
//! metrics listener serves ([`crate::serve_metrics`], feature `http`).
//!
//! Label values come from bounded sets only (refusal reasons, rule names of a loaded policy,
//! served method names, configured files), so a hostile peer cannot grow the series count.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

/// Every metric one process records, under the `zt_` prefix. Cheap to clone (one `Arc`);
/// clones share the registry.
///
/// Recording never touches the registry: [`Metrics::metric`] hands out a handle to the
/// family once, and the recording code keeps it.
///
/// ```
/// use prometheus_client::metrics::counter::Counter;
///
/// let metrics = zt_telemetry::Metrics::new();
/// let served: Counter = metrics.metric("served", "Requests served", Counter::default);
/// served.inc();
/// // The same name gives the same series.
/// let again: Counter = metrics.metric("served", "Requests served", Counter::default);
/// again.inc();
/// assert!(metrics.encode().contains("zt_served_total 2"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    /// What was registered under each name, to hand out the same family again.
    registered: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            registry: Registry::with_prefix("zt"),
            registered: HashMap::new(),
        }
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The metric registered as `zt_<name>`, registering `make()` with `help` the first time.
    /// Every caller asking for one name gets a handle to the same series, so two servers
    /// sharing a registry count together.
    ///
    /// # Panics
    /// If `name` was registered with another metric type: a programming error, found by the
    /// first test that records both.
    #[allow(
        clippy::expect_used,
        reason = "one name, one type: a mismatch is a bug in the recording crate"
    )]
    pub fn metric<M>(&self, name: &'static str, help: &str, make: impl FnOnce() -> M) -> M
    where
        M: Metric + Clone + Any + Send + Sync,
    {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = inner.registered.get(name) {
            return existing
                .downcast_ref::<M>()
                .expect("a metric name is registered with one type")
                .clone();
        }
        let metric = make();
        inner.registry.register(name, help, metric.clone());
        inner.registered.insert(name, Box::new(metric.clone()));
        metric
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &inner.registry);
        out
    }
}

/// Decrements its gauge when dropped: counts something (an RPC, a connection) as open for as
/// long as the guard lives.
#[derive(Debug)]
pub struct InFlight(Gauge<i64, AtomicI64>);

impl InFlight {
    /// Increments `gauge` until the guard is dropped.
    pub fn start(gauge: &Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn one_name_one_series_and_gauges_follow_guards() {
        let metrics = Metrics::new();
        let a: Counter = metrics.metric("things", "Things", Counter::default);
        let b: Counter = metrics.metric("things", "Things", Counter::default);
        a.inc();
        b.inc();
        let gauge: Gauge<i64, AtomicI64> = metrics.metric("open", "Open", Gauge::default);
        let guard = InFlight::start(&gauge);
        let text = metrics.encode();
        assert_eq!(text.matches("# HELP zt_things").count(), 1, "{text}");
        assert!(text.contains("zt_things_total 2"), "{text}");
        assert!(text.contains("zt_open 1"), "{text}");
        drop(guard);
        assert!(metrics.encode().contains("zt_open 0"));
    }
}
