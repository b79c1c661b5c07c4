//! A "slow core" for the server: a CPU bandwidth quota (Linux CFS, through a cgroup), so the
//! server, not the load generator, sets the pace.
//!
//! What it emulates: a server with a fraction of a core's CPU time, the way a slower machine
//! or a container limit (`--cpus`, Kubernetes `limits.cpu`) gives it, so every microsecond of
//! server CPU per RPC shows in the RPS. What it does not: each instruction still runs at this
//! core's speed, with its caches and memory bandwidth; and the time is handed out in slices
//! (the server runs for `quota` then waits for the rest of `period`), so latency percentiles
//! include those waits (up to `period - quota`) on top of queueing.

use std::path::{Path, PathBuf};

use crate::BenchError;

/// CFS bandwidth period, microseconds: short, so a throttled server waits at most a few
/// milliseconds; the kernel's minimum quota is 1 ms.
const PERIOD_US: u64 = 3_000;

/// A cgroup whose processes share `fraction` of one core; removed when dropped.
#[derive(Debug)]
pub struct CpuQuota {
    dir: PathBuf,
    fraction: f64,
}

impl CpuQuota {
    /// Creates the cgroup `name` with `fraction` of one core (cgroup v1 `cpu` controller, or
    /// v2 `cpu.max`). Needs write access to the cgroup tree (root, as here and in CI).
    pub fn create(name: &str, fraction: f64) -> Result<Self, BenchError> {
        let quota_us = ((PERIOD_US as f64 * fraction).round() as u64).max(1_000);
        let fraction = quota_us as f64 / PERIOD_US as f64;
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let v2 = Path::new("/sys/fs/cgroup");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir)?;
            let quota = Self { dir, fraction };
            std::fs::write(quota.dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
            std::fs::write(quota.dir.join("cpu.cfs_quota_us"), quota_us.to_string())?;
            Ok(quota)
        } else if v2.join("cgroup.controllers").exists() {
            let dir = v2.join(name);
            std::fs::create_dir_all(&dir)?;
            let quota = Self { dir, fraction };
            std::fs::write(quota.dir.join("cpu.max"), format!("{quota_us} {PERIOD_US}"))?;
            Ok(quota)
        } else {
            Err(BenchError::Io(std::io::Error::other(
                "no cgroup cpu controller at /sys/fs/cgroup",
            )))
        }
    }

    /// Moves process `pid` (and its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), BenchError> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())?;
        Ok(())
    }

    /// The cgroup's `cpu.stat`, whose throttled time [`throttled_time`] reads.
    pub fn stat_file(&self) -> PathBuf {
        self.dir.join("cpu.stat")
    }

    /// The share of one core the cgroup gets (after rounding to the kernel's minimum).
    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    /// The quota in words, for reports.
    pub fn describe(&self) -> String {
        format!(
            "{:.0} us of CPU every {PERIOD_US} us ({:.2} of a core, CFS quota)",
            self.fraction * PERIOD_US as f64,
            self.fraction
        )
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // Only empty cgroups can be removed; the processes in it have been killed by then.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// How long the cgroup whose `cpu.stat` is `stat` has been throttled so far: time its
/// processes had work but had used their quota (v1 `throttled_time`, ns; v2
/// `throttled_usec`). `None` if the file cannot be read.
pub fn throttled_time(stat: &Path) -> Option<std::time::Duration> {
    let text = std::fs::read_to_string(stat).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        let value: u64 = value.trim().parse().ok()?;
        match key {
            "throttled_time" => Some(std::time::Duration::from_nanos(value)),
            "throttled_usec" => Some(std::time::Duration::from_micros(value)),
            _ => None,
        }
    })
}
