//! Hot reload of files a service serves with: certificates, keys, trust bundles, CRLs, policies.
//!
//! A [`Reloader`] polls the metadata of each watched file, *following symlinks*, so every way
//! a file gets replaced is seen: an in-place write, an atomic rename over it, and the
//! Kubernetes ConfigMap/Secret swap of a `..data` symlink. Polling (rather than inotify) is
//! deliberate: it sees through symlinks and bind mounts alike and costs a few `stat` calls a
//! second. SIGHUP reloads everything at once, changed or not.
//!
//! A change is reloaded only once the files have stopped changing for a moment, so that a
//! certificate and its key written one after the other are read as a pair. The reload itself
//! is the caller's: a closure that reads everything again and swaps it in only if all of it is
//! good. On error the old material stays in use; the error (which names the file) is logged
//! under `zt_reload` and counted in `zt_reloads_total{result="error"}`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use zt_telemetry::Metrics;

/// Why a reload failed: the reloading crate's own error (which names the file and the item).
pub type ReloadError = Box<dyn std::error::Error + Send + Sync>;

/// The reload action: read the files again and swap them in, or explain why not.
pub type ReloadFn = Box<dyn Fn() -> Result<(), ReloadError> + Send + Sync>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    file: String,
    result: &'static str,
}

/// `zt_reloads_total{file, result}`: reload attempts, by file and result (`ok`, `error`).
fn reloads(metrics: &Metrics) -> Family<ReloadLabels, Counter> {
    metrics.metric(
        "reloads",
        "Reloads of certificates, keys, trust bundles, CRLs and policies, by file and result",
        Family::default,
    )
}

struct Watched {
    name: &'static str,
    files: Vec<PathBuf>,
    seen: Vec<Fingerprint>,
    reload: ReloadFn,
}

/// What identifies a file's content cheaply: where it lives on disk and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    Present {
        dev: u64,
        ino: u64,
        len: u64,
        modified: Option<SystemTime>,
    },
    Missing,
}

fn fingerprint(path: &std::path::Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt as _;
    // `metadata` follows symlinks: a swapped `..data` link shows up as a new inode.
    match std::fs::metadata(path) {
        Ok(meta) => Fingerprint::Present {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        },
        Err(_) => Fingerprint::Missing,
    }
}

/// Watches groups of files and reloads each group when one of its files changes.
pub struct Reloader {
    watched: Vec<Watched>,
    interval: Duration,
    settle: Duration,
    reloads: Family<ReloadLabels, Counter>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field(
                "groups",
                &self.watched.iter().map(|w| w.name).collect::<Vec<_>>(),
            )
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Polls every `interval`; a change is reloaded once the files have been still for
    /// `interval / 4`, kept between 50 ms and 1 s (long enough for a writer to put a
    /// certificate and its key in place one after the other, short enough that a slow poll
    /// does not delay the reload further).
    pub fn new(interval: Duration, metrics: Metrics) -> Self {
        Self {
            watched: Vec::new(),
            interval,
            settle: (interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            reloads: reloads(&metrics),
        }
    }

    /// Reloads `name` with `reload` whenever one of `files` changes.
    pub fn watch(
        mut self,
        name: &'static str,
        files: Vec<PathBuf>,
        reload: impl Fn() -> Result<(), ReloadError> + Send + Sync + 'static,
    ) -> Self {
        let seen = files.iter().map(|f| fingerprint(f)).collect();
        self.watched.push(Watched {
            name,
            files,
            seen,
            reload: Box::new(reload),
        });
        self
    }

    /// Starts watching in a background task that polls the files and reloads everything on
    /// SIGHUP, until the handle is aborted.
    ///
    /// The SIGHUP handler is installed before this returns: a process that reports itself
    /// ready after spawning its reloader can take a hangup at once, where the default action
    /// would have killed it.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(target: "zt_reload", error = %err, "no SIGHUP handler; polling only");
                None
            }
        };
        tokio::spawn(self.run(hangup))
    }

    async fn run(mut self, mut hangup: Option<tokio::signal::unix::Signal>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => None } } => true,
            };
            if forced {
                tracing::info!(target: "zt_reload", "SIGHUP: reloading everything");
            }
            self.check(forced).await;
        }
    }

    /// One round: reloads each group whose files changed (or every group if `forced`).
    /// Returns how many groups were reloaded successfully.
    pub async fn check(&mut self, forced: bool) -> usize {
        let mut reloaded = 0;
        for index in 0..self.watched.len() {
            let now: Vec<Fingerprint> = self.watched[index]
                .files
                .iter()
                .map(|f| fingerprint(f))
                .collect();
            if !forced && now == self.watched[index].seen {
                continue;
            }
            // A hangup is the operator saying the files are in place: read them now.
            let settled = if forced {
                now
            } else {
                self.settle(index, now).await
            };
            let watched = &mut self.watched[index];
            let changed: Vec<&PathBuf> = watched
                .files
                .iter()
                .zip(watched.seen.iter().zip(&settled))
                .filter(|(_, (before, after))| forced || before != after)
                .map(|(file, _)| file)
                .collect();
            let result = (watched.reload)();
            let files = changed
                .iter()
                .map(|file| file.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            for file in &changed {
                let labels = ReloadLabels {
                    file: file.display().to_string(),
                    result: if result.is_ok() { "ok" } else { "error" },
                };
                self.reloads.get_or_create(&labels).inc();
            }
            match result {
                Ok(()) => {
                    reloaded += 1;
                    tracing::info!(
                        target: "zt_reload",
                        what = watched.name,
                        files = %files,
                        "reloaded; new connections use the new material"
                    );
                }
                Err(error) => tracing::error!(
                    target: "zt_reload",
                    what = watched.name,
                    files = %files,
                    error = %zt_telemetry::error_line(&*error),
                    "reload failed; still serving with the last good material"
                ),
            }
            // Remember what was tried, good or bad: a broken file is reported once, and
            // retried when it changes again (or on SIGHUP).
            watched.seen = settled;
        }
        reloaded
    }

    /// Waits until the group's files stop changing (bounded), and returns their fingerprints.
    async fn settle(&self, index: usize, mut last: Vec<Fingerprint>) -> Vec<Fingerprint> {
        for _ in 0..20 {
            tokio::time::sleep(self.settle).await;
            let now: Vec<Fingerprint> = self.watched[index]
                .files
                .iter()
                .map(|f| fingerprint(f))
                .collect();
            if now == last {
                break;
            }
            last = now;
        }
        last
    }
}
