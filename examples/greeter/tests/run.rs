//! The example as a user runs it: the real `greeter-server` binary with `policy.json`, and the
//! real `greeter-client` binary, with certificates made at test time. One call allowed, one
//! denied (and logged by the server), then a graceful stop on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use zt_testkit::{Identity, TestPki};

const SERVER_ID: &str = "spiffe://zt.example/ns/demo/sa/greeter";
const CALLER_ID: &str = "spiffe://zt.example/ns/demo/sa/caller";
const ADMIN_ID: &str = "spiffe://zt.example/ns/demo/sa/admin";

fn client(addr: SocketAddr, who: &Identity, ca: &Path, method: &str) -> (Output, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_greeter-client"))
        .arg("--cert")
        .arg(&who.cert)
        .arg("--key")
        .arg(&who.key)
        .arg("--ca")
        .arg(ca)
        .args([
            "--server",
            &format!("https://{addr}"),
            "--server-id",
            SERVER_ID,
        ])
        .args(["--method", method, "--name", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

#[test]
fn the_caller_says_hello_but_may_not_administer() {
    let pki = TestPki::new("zt.example");
    let server = pki.issue("greeter", SERVER_ID, &["localhost"]);
    let caller = pki.issue("caller", CALLER_ID, &[]);
    let admin = pki.issue("admin", ADMIN_ID, &[]);
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy.json");

    let mut child = Command::new(env!("CARGO_BIN_EXE_greeter-server"))
        .arg("--cert")
        .arg(&server.cert)
        .arg("--key")
        .arg(&server.key)
        .arg("--ca")
        .arg(pki.ca_cert())
        .arg("--policy")
        .arg(&policy)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "greeter-server exited early:\n{log}"
        );
        log.push_str(&line);
        if line.contains("listening (mTLS only)") {
            let at = line.find("address=").expect("the address is logged");
            break line[at + "address=".len()..].trim().parse().unwrap();
        }
    };

    // Allowed: the reply names the caller's verified identity.
    let (output, stdout, stderr_text) = client(addr, &caller, &pki.ca_cert(), "hello");
    assert!(output.status.success(), "{stderr_text}");
    assert_eq!(stdout.trim(), format!("hello test, you are {CALLER_ID}"));

    // Denied: the policy's default deny, said in words, and a failing exit code.
    let (output, stdout, stderr_text) = client(addr, &caller, &pki.ca_cert(), "admin");
    assert!(!output.status.success(), "{stdout}");
    assert_eq!(
        stderr_text.trim(),
        format!(
            "greeter-client: the greeter refused the call: {CALLER_ID} may not call \
             /greeter.v1.Greeter/Admin (gRPC PERMISSION_DENIED)"
        )
    );

    // The admin may.
    let (output, stdout, stderr_text) = client(addr, &admin, &pki.ca_cert(), "admin");
    assert!(output.status.success(), "{stderr_text}");
    assert_eq!(stdout.trim(), "admin work done");

    // SIGTERM: the server drains (no call is open) and stops.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("greeter-server did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stderr.read_to_string(&mut log).unwrap();
    assert!(status.success(), "{status}:\n{log}");

    let denial = log
        .lines()
        .find(|line| line.contains("request denied"))
        .unwrap_or_else(|| panic!("the denial is logged:\n{log}"));
    for field in [
        "zt_authz::decision",
        &format!("peer={CALLER_ID}"),
        "method=\"/greeter.v1.Greeter/Admin\"",
        "policy=\"greeter\"",
        "rule=\"<default deny>\"",
    ] {
        assert!(denial.contains(field), "{field} in {denial}");
    }
    assert!(log.contains("greeter stopped"), "{log}");
    // The policy covers every served method: no warning about it.
    assert!(!log.contains("WARN zt_authz::policy"), "{log}");
}
