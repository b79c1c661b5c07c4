//! How connections end: at their maximum age the server sends GOAWAY and lets the calls in
//! flight finish; a peer that does not finish is cut off after the drain grace. (The age is
//! how the server makes every client re-handshake onto rotated or revoked certificates, so it
//! runs in every deployment.) That no call fails under load is the client's half:
//! `services/payments/tests/client.rs` and `scripts/interop.sh` (grpcio).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

mod common;

use std::time::{Duration, Instant};

use common::raw_h2::{GOAWAY, RawH2};
use common::{config, pki, start_with};

const AGE: Duration = Duration::from_secs(1);
const DRAIN: Duration = Duration::from_secs(3);

/// A connection reaching its maximum age gets GOAWAY (code NO_ERROR) at that age. Before,
/// tonic given an age *and* a grace slept both and closed the socket without a GOAWAY. This
/// client answers nothing (not even the PING that ends a graceful shutdown), so it also shows
/// the hard bound: the connection is cut at age + drain grace.
#[tokio::test]
async fn at_its_maximum_age_a_connection_is_sent_goaway() {
    let p = pki();
    let mut cfg = config(&p.ledger, &p.pki.ca_cert());
    cfg.limits.max_connection_age = Some(AGE);
    cfg.limits.drain_timeout = DRAIN;
    let (server, _) = start_with(cfg).await;
    let mut raw = RawH2::connect(server.addr, &p).await;
    let started = Instant::now();
    let (frames, closed) = raw.frames(AGE + Duration::from_millis(500)).await;
    let goaway = frames
        .iter()
        .find(|f| f.kind == GOAWAY)
        .unwrap_or_else(|| panic!("a GOAWAY within the age; frames: {frames:?}"));
    assert_eq!(goaway.error_code(), Some(0), "NO_ERROR: a graceful end");
    assert!(!closed, "not cut at the age: in-flight calls get the grace");
    let (_, closed) = raw.frames(DRAIN + Duration::from_secs(1)).await;
    let took = started.elapsed();
    assert!(closed, "a peer that does not finish is cut off");
    assert!(took >= AGE + DRAIN, "not before age + grace: {took:?}");
    println!("GOAWAY within {AGE:?}; an unresponsive peer cut off after {took:?}");
}
