//! gRFC A59 audit lines: what was asked, by whom, and what the policy said.
//!
//! A policy asks for them in `audit_logging_options` (`audit_condition` says which decisions,
//! `audit_loggers` names `stdout_logger`). The line format is grpc-go's stdout logger's, so the
//! tooling that reads those reads these:
//!
//! ```json
//! {"grpc_audit_log":{"rpc_method":"/ledger.v1.Ledger/Transfer","principal":"spiffe://...",
//!  "policy_name":"ledger","matched_rule":"deny-auditor-writes","authorized":false},
//!  "timestamp":"2026-11-24T10:00:00.000000Z"}
//! ```

use std::io::Write as _;

use serde::Serialize;

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord<'a> {
    /// The full method path, `/package.Service/Method`.
    pub rpc_method: &'a str,
    /// The peer's SPIFFE ID, or empty when it had no valid identity.
    pub principal: &'a str,
    /// The policy's `name`.
    pub policy_name: &'a str,
    /// The rule that decided, or empty for the default deny (and for a refused identity).
    pub matched_rule: &'a str,
    /// Whether the request was let through.
    pub authorized: bool,
}

/// Where audit lines go. Implementations must not block for long: they run on the request path.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Records one decision.
    fn record(&self, record: &AuditRecord<'_>);
}

/// Writes each record as one JSON line to stdout (A59's `stdout_logger`), apart from the
/// diagnostic logs on stderr.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutAudit;

impl AuditSink for StdoutAudit {
    fn record(&self, record: &AuditRecord<'_>) {
        let line = audit_line(record, std::time::SystemTime::now());
        // One write per line under the lock, so concurrent requests never interleave.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// A record as grpc-go's stdout audit logger writes it, newline included.
pub fn audit_line(record: &AuditRecord<'_>, at: std::time::SystemTime) -> String {
    #[derive(Serialize)]
    struct Line<'r, 'a> {
        grpc_audit_log: &'r AuditRecord<'a>,
        timestamp: String,
    }
    let line = Line {
        grpc_audit_log: record,
        timestamp: humantime::format_rfc3339_micros(at).to_string(),
    };
    // Serializing plain strings and a bool cannot fail; an empty object is the fallback.
    let mut text = serde_json::to_string(&line).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_matches_grpc_go_stdout_logger() {
        let record = AuditRecord {
            rpc_method: "/ledger.v1.Ledger/Transfer",
            principal: "spiffe://zt.example/ns/prod/sa/auditor",
            policy_name: "ledger",
            matched_rule: "deny-auditor-writes",
            authorized: false,
        };
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(
            audit_line(&record, at),
            "{\"grpc_audit_log\":{\"rpc_method\":\"/ledger.v1.Ledger/Transfer\",\
             \"principal\":\"spiffe://zt.example/ns/prod/sa/auditor\",\"policy_name\":\"ledger\",\
             \"matched_rule\":\"deny-auditor-writes\",\"authorized\":false},\
             \"timestamp\":\"2027-01-15T08:00:00.000000Z\"}\n"
        );
    }
}
