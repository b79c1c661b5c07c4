//! What the services tell their operators: logs and metrics.
//!
//! - `init` (feature `logs`): the `tracing` subscriber, text for people or JSON lines for machines. Every
//!   security-relevant event is a structured event under a stable target, so it can be filtered
//!   and shipped: `zt_tls::refused` (a peer refused during the handshake), `zt_authz::decision`
//!   (every authorization decision), `zt_reload` (material reloaded, or kept after a bad file).
//! - [`Metrics`]: the Prometheus registry every crate records into, passed explicitly (no global
//!   registry); each crate defines its own metric families beside the code that records them.
//!   `serve_metrics` (feature `http`) exposes them on their own plain-HTTP listener, apart from
//!   the mTLS port.
//!
//! Both features are on by default; a library that only records metrics (the authorization
//! layer, the acceptor) depends on this crate with `default-features = false`, which leaves out
//! clap, tracing-subscriber and hyper.

#[cfg(feature = "logs")]
mod logs;
mod metrics;
#[cfg(feature = "http")]
mod serve;

#[cfg(feature = "logs")]
pub use logs::{LogFormat, init};
pub use metrics::{InFlight, Metrics};
#[cfg(feature = "http")]
pub use serve::serve_metrics;

/// An error and its causes on one line, each said once: our error types already put their
/// cause's text in their own message (so a bare `Display` is complete), while a context added
/// at a binary's edge does not; this prints every cause whose text is not already there.
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = next.source();
    }
    line
}

/// A binary's exit status: success, or failure when the command completed but its outcome was
/// not the expected one (it has said why), or failure with `PROGRAM: error: <one line>` on
/// stderr when it could not complete.
pub fn exit_code<E>(program: &str, outcome: Result<bool, E>) -> std::process::ExitCode
where
    E: AsRef<dyn std::error::Error + Send + Sync + 'static>,
{
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("{program}: error: {}", error_line(err.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "certs/ca.pem: {}", self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let err = Outer(std::io::Error::other("no such file"));
        assert_eq!(super::error_line(&err), "certs/ca.pem: no such file");
    }
}
