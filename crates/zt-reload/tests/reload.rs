//! The reloader against real files: every way a file gets replaced is seen, a certificate and
//! its key written one after the other are read as a pair, a failed reload is reported once
//! and retried on the next change, and SIGHUP reloads everything.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zt_reload::Reloader;
use zt_telemetry::Metrics;
use zt_testkit::{Logs, atomic_write, kubelet_swap};

/// What the files held at each reload a group ran.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Vec<String>>>>);

impl Seen {
    fn all(&self) -> Vec<Vec<String>> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Watches `files` as `name`: a reload reads them all and records what they held; it fails,
/// naming the file, if one of them starts with `bad`.
fn watch(reloader: Reloader, name: &'static str, files: &[&Path]) -> (Reloader, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let files: Vec<PathBuf> = files.iter().map(|f| f.to_path_buf()).collect();
    let reloader = reloader.watch(name, files.clone(), move || {
        let mut contents = Vec::new();
        for file in &files {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            if text.starts_with("bad") {
                return Err(format!("{}: not a certificate", file.display()).into());
            }
            contents.push(text);
        }
        record.0.lock().unwrap().push(contents);
        Ok(())
    });
    (reloader, seen)
}

#[tokio::test]
async fn an_in_place_write_an_atomic_rename_and_a_kubelet_symlink_swap_are_each_seen() {
    let dir = tempfile::tempdir().unwrap();
    let in_place = dir.path().join("in-place.pem");
    let renamed = dir.path().join("renamed.pem");
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(&in_place, "one").unwrap();
    std::fs::write(&renamed, "one").unwrap();
    kubelet_swap(&secret, "2026_11_24_1", &[("tls.crt", b"one")]);
    let mounted = secret.join("tls.crt");

    let reloader = Reloader::new(Duration::from_millis(200), Metrics::new());
    let (reloader, in_place_seen) = watch(reloader, "in place", &[&in_place]);
    let (reloader, renamed_seen) = watch(reloader, "renamed", &[&renamed]);
    let (mut reloader, mounted_seen) = watch(reloader, "mounted", &[&mounted]);
    assert_eq!(reloader.check(false).await, 0, "nothing changed yet");

    // A different length, so the change shows even within one tick of the coarse file clock.
    std::fs::write(&in_place, "two!").unwrap();
    assert_eq!(reloader.check(false).await, 1);
    atomic_write(&renamed, "two");
    assert_eq!(reloader.check(false).await, 1);
    kubelet_swap(&secret, "2026_11_24_2", &[("tls.crt", b"two")]);
    assert_eq!(reloader.check(false).await, 1);
    assert_eq!(
        reloader.check(false).await,
        0,
        "each change is reloaded once"
    );

    assert_eq!(in_place_seen.all(), [["two!"]]);
    assert_eq!(renamed_seen.all(), [["two"]]);
    assert_eq!(mounted_seen.all(), [["two"]]);
}

#[tokio::test]
async fn a_certificate_and_its_key_written_one_after_the_other_are_read_as_a_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, "cert 1").unwrap();
    std::fs::write(&key, "key 1").unwrap();
    // Polling every 4 s, a change must be still for 1 s before it is read: a wide margin over
    // the writer's 100 ms, even on a loaded machine.
    let reloader = Reloader::new(Duration::from_secs(4), Metrics::new());
    let (mut reloader, seen) = watch(reloader, "tls", &[&cert, &key]);

    atomic_write(&cert, "cert 2");
    let writer = {
        let key = key.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            atomic_write(&key, "key 2");
        })
    };
    assert_eq!(reloader.check(false).await, 1);
    writer.join().unwrap();

    assert_eq!(
        seen.all(),
        [["cert 2", "key 2"]],
        "one reload, of the new pair, never the new certificate with the old key"
    );
}

#[tokio::test]
async fn a_failed_reload_is_logged_and_counted_once_and_retried_when_the_file_changes() {
    let logs = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(&policy, "good 1").unwrap();
    let metrics = Metrics::new();
    let reloader = Reloader::new(Duration::from_millis(200), metrics.clone());
    let (mut reloader, seen) = watch(reloader, "policy", &[&policy]);
    let counted = |result: &str| {
        format!(
            "zt_reloads_total{{file=\"{}\",result=\"{result}\"}} 1",
            policy.display()
        )
    };

    atomic_write(&policy, "bad");
    assert_eq!(
        reloader.check(false).await,
        0,
        "the broken file is not taken"
    );
    assert_eq!(reloader.check(false).await, 0);
    assert!(
        metrics.encode().contains(&counted("error")),
        "{}",
        metrics.encode()
    );
    let failures: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("reload failed") && l.contains(&*policy.to_string_lossy()))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "reported once, not at every poll: {failures:?}"
    );
    assert!(failures[0].contains("ERROR"), "{}", failures[0]);
    assert!(
        failures[0].contains(&format!("{}: not a certificate", policy.display())),
        "the line names the file and the problem: {}",
        failures[0]
    );

    atomic_write(&policy, "good 2");
    assert_eq!(reloader.check(false).await, 1, "a fixed file is taken");
    assert!(
        metrics.encode().contains(&counted("ok")),
        "{}",
        metrics.encode()
    );
    assert_eq!(seen.all(), [["good 2"]]);
}

#[tokio::test]
async fn sighup_reloads_every_group_changed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, policy) = (dir.path().join("tls.crt"), dir.path().join("policy.json"));
    std::fs::write(&cert, "cert").unwrap();
    std::fs::write(&policy, "policy").unwrap();
    // Polling is hourly: only the signal can cause a reload within this test.
    let reloader = Reloader::new(Duration::from_secs(3600), Metrics::new());
    let (reloader, tls) = watch(reloader, "tls", &[&cert]);
    let (reloader, policies) = watch(reloader, "policy", &[&policy]);
    let task = reloader.spawn();

    // `spawn` installed the handler before returning, so the hangup cannot kill this process.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..100 {
        if tls.count() == 1 && policies.count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(tls.all(), [["cert"]]);
    assert_eq!(policies.all(), [["policy"]]);
}
