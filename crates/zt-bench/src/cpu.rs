//! CPU time of a process over a window, in nanoseconds (Linux `/proc`).
//!
//! The precise source is the scheduler's own account of each thread,
//! `/proc/PID/task/TID/schedstat`: on-CPU time (ns), time spent runnable but waiting for a
//! CPU (ns), and the number of times the thread was put on a CPU. A process's CPU time over
//! a window is the sum over its threads of the difference between two readings. A thread is
//! brought up to date at every context switch and scheduler tick (`CONFIG_HZ`, 4 ms at 250
//! Hz), so a reading lags by at most one tick for a thread running at that moment, and by
//! nothing for one that sleeps.
//!
//! `/proc/PID/schedstat` is *not* a process total: it is the main thread's line (the thread
//! whose TID is PID), so it is read as one of the threads, never added to them.
//!
//! What the per-thread sum cannot see: a thread that **exits** between the two readings takes
//! its time with it (the kernel folds it into a process total that only `/proc/PID/stat`'s
//! `utime + stime` shows, in clock ticks of 10 ms, truncated separately). So when a thread
//! seen in the first reading is gone from the second, the window's CPU is the larger of the
//! threads still there (precise) and the tick-based total (which includes the dead thread,
//! to within 20 ms), and the result says so ([`Source::TicksThreadsExited`]). A thread born
//! between the readings is counted whole: all its time is inside the window. Without
//! `schedstat` (a kernel without `CONFIG_SCHED_INFO` prints zeros), the tick-based total is
//! all there is ([`Source::Ticks`]).

use std::collections::BTreeMap;
use std::time::Duration;

/// Where a CPU figure came from, from most to least precise (so `max` is the least precise).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Every thread's on-CPU nanoseconds (`/proc/PID/task/*/schedstat`).
    Schedstat,
    /// A thread exited in the window: the larger of the surviving threads' nanoseconds and
    /// the tick-based total (which includes the exited thread's time, to within 20 ms).
    TicksThreadsExited,
    /// Only `/proc/PID/stat`'s `utime + stime` (10 ms clock ticks) could be read.
    Ticks,
}

/// One thread's scheduler account so far.
#[derive(Debug, Clone, Copy, Default)]
struct Thread {
    on_cpu_ns: u64,
    waited_ns: u64,
    runs: u64,
}

/// One reading of a process: each thread's account, and the tick-based process total.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// By TID; empty if `schedstat` could not be read (or reads zeros).
    threads: BTreeMap<u32, Thread>,
    /// `utime + stime` of the whole process, dead threads included.
    ticks: Option<Duration>,
}

/// What a process used between two [`Snapshot`]s.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// On-CPU time, every thread.
    pub cpu: Duration,
    /// Time its threads were runnable but not running (another task had the CPU, or a CFS
    /// quota had throttled it); `None` without `schedstat`.
    pub waited: Option<Duration>,
    /// Times a thread of it was put on a CPU (wake-ups and preemptions); `None` without
    /// `schedstat`.
    pub runs: Option<u64>,
    /// Threads seen in the first reading and gone in the second.
    pub exited: usize,
    /// Which account the figure comes from.
    pub source: Source,
}

impl Snapshot {
    /// Reads process `pid`; `None` if it does not exist (or `/proc` cannot be read at all).
    pub fn take(pid: u32) -> Option<Self> {
        let threads = threads(pid).unwrap_or_default();
        let ticks = tick_time(pid);
        if threads.is_empty() && ticks.is_none() {
            return None;
        }
        Some(Self { threads, ticks })
    }

    /// [`Snapshot::take`] of every process in `pids`; `None` if there are none or one cannot
    /// be read.
    pub fn take_all(pids: &[u32]) -> Option<Vec<Self>> {
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|&pid| Self::take(pid)).collect()
    }

    /// What the process used from `self` (earlier) to `later`.
    pub fn usage_until(&self, later: &Self) -> Usage {
        let ticks = self
            .ticks
            .zip(later.ticks)
            .map(|(b, a)| a.saturating_sub(b));
        if self.threads.is_empty() || later.threads.is_empty() {
            return Usage {
                cpu: ticks.unwrap_or_default(),
                waited: None,
                runs: None,
                exited: 0,
                source: Source::Ticks,
            };
        }
        let mut sum = Thread::default();
        for (tid, after) in &later.threads {
            let before = self.threads.get(tid).copied().unwrap_or_default();
            sum.on_cpu_ns += after.on_cpu_ns.saturating_sub(before.on_cpu_ns);
            sum.waited_ns += after.waited_ns.saturating_sub(before.waited_ns);
            sum.runs += after.runs.saturating_sub(before.runs);
        }
        let exited = self
            .threads
            .keys()
            .filter(|tid| !later.threads.contains_key(tid))
            .count();
        let precise = Duration::from_nanos(sum.on_cpu_ns);
        let (cpu, source) = match ticks {
            Some(ticks) if exited > 0 => (precise.max(ticks), Source::TicksThreadsExited),
            _ => (precise, Source::Schedstat),
        };
        Usage {
            cpu,
            waited: Some(Duration::from_nanos(sum.waited_ns)),
            runs: Some(sum.runs),
            exited,
            source,
        }
    }
}

/// Every thread's `schedstat` line; empty if the kernel keeps no such account (all zeros).
fn threads(pid: u32) -> Option<BTreeMap<u32, Thread>> {
    let mut threads = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread that exits between the listing and this read is simply not there.
        let Ok(line) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(on_cpu_ns)), Some(Ok(waited_ns)), Some(Ok(runs))) =
            (fields.next(), fields.next(), fields.next())
        {
            threads.insert(
                tid,
                Thread {
                    on_cpu_ns,
                    waited_ns,
                    runs,
                },
            );
        }
    }
    // `sched_info_on()` false: the kernel prints "0 0 0" for every thread.
    if threads.values().all(|t| t.on_cpu_ns == 0 && t.runs == 0) {
        threads.clear();
    }
    Some(threads)
}

/// User plus system CPU time of process `pid` so far (every thread, dead ones included),
/// from `/proc/PID/stat`, in clock ticks.
fn tick_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(threads: &[(u32, u64)], ticks_ms: u64) -> Snapshot {
        Snapshot {
            threads: threads
                .iter()
                .map(|&(tid, ns)| {
                    (
                        tid,
                        Thread {
                            on_cpu_ns: ns,
                            waited_ns: ns / 10,
                            runs: ns / 1000,
                        },
                    )
                })
                .collect(),
            ticks: Some(Duration::from_millis(ticks_ms)),
        }
    }

    #[test]
    fn sums_threads_and_counts_a_newborn_whole() {
        let before = snapshot(&[(1, 1_000_000), (2, 5_000_000)], 0);
        let after = snapshot(&[(1, 3_500_000), (2, 5_000_000), (3, 250_000)], 0);
        let usage = before.usage_until(&after);
        assert_eq!(usage.cpu, Duration::from_nanos(2_750_000));
        assert_eq!(usage.waited, Some(Duration::from_nanos(275_000)));
        assert_eq!(usage.runs, Some(2_750));
        assert_eq!(usage.source, Source::Schedstat);
        assert_eq!(usage.exited, 0);
    }

    #[test]
    fn an_exited_thread_falls_back_to_the_tick_total() {
        let before = snapshot(&[(1, 0), (2, 0)], 100);
        let after = snapshot(&[(1, 30_000_000)], 150);
        let usage = before.usage_until(&after);
        assert_eq!(usage.exited, 1);
        assert_eq!(usage.source, Source::TicksThreadsExited);
        // Ticks (50 ms) include the dead thread; the survivor alone used 30 ms.
        assert_eq!(usage.cpu, Duration::from_millis(50));
        // Ticks lagging the survivors' precise figure never lower it.
        let after = snapshot(&[(1, 70_000_000)], 150);
        assert_eq!(
            before.usage_until(&after).cpu,
            Duration::from_nanos(70_000_000)
        );
    }

    #[test]
    fn without_schedstat_only_ticks() {
        let mut before = snapshot(&[], 100);
        before.threads.clear();
        let after = snapshot(&[(1, 30_000_000)], 120);
        let usage = before.usage_until(&after);
        assert_eq!(usage.source, Source::Ticks);
        assert_eq!(usage.cpu, Duration::from_millis(20));
        assert_eq!(usage.runs, None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let before = Snapshot::take(me).expect("/proc/self");
        let mut x = 0_u64;
        for i in 0..20_000_000_u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = Snapshot::take(me).expect("/proc/self");
        let usage = before.usage_until(&after);
        assert!(usage.cpu > Duration::ZERO, "{usage:?} {x}");
    }
}
