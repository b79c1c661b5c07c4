//! Per-method authorization with gRPC's own policy format (gRFC A43), evaluated without I/O.
//!
//! A policy is JSON written for grpc-go's `authz` package and loads here unchanged:
//!
//! ```json
//! { "name": "ledger",
//!   "deny_rules":  [ ... ],
//!   "allow_rules": [ { "name": "payments-all",
//!                      "source":  { "principals": ["spiffe://zt.example/ns/prod/sa/payments"] },
//!                      "request": { "paths": ["/ledger.v1.Ledger/*"] } } ] }
//! ```
//!
//! Semantics (A43): deny rules first, any match denies; then allow rules, any match allows;
//! anything else is denied. Within a rule `source` and `request` must both match; entries of
//! `principals`, `paths` and header `values` are alternatives; `headers` entries must all match.
//! Patterns are exact, `prefix*`, `*suffix` or `*` (one or more characters).
//!
//! One deliberate difference: a principal pattern that starts with `spiffe://` is matched as a
//! SPIFFE ID, not as a raw string. Its trust domain must be equal and `*` stands only for whole
//! trailing path segments, so `spiffe://zt.example/ns/*` can never match
//! `spiffe://zt.example.evil/...`, and only the peer's validated SPIFFE ID (never a DNS name or
//! subject) can match it. Raw A43 prefix matching would allow both.
//!
//! [`Policy::check`], [`Policy::coverage`] and [`Policy::explain`] analyse a policy against
//! the methods a server serves, for tooling and CI.
//!
//! The reader accepts exactly the A43 schema: a wrong JSON type (`null` included), an unknown
//! field or a repeated key is a [`PolicyError`] naming its JSON path, never read as "absent"
//! (an absent rule part matches every caller).
//!
//! A second difference: a deny rule's header matcher also matches any single value of a
//! repeated header, so sending a header twice cannot dodge a deny rule; allow rules keep A43's
//! joined reading. `-bin` header values are matched base64-decoded, as gRPC does.
//!
//! [`Policy::from_json`] compiles once (and indexes rules by exact SPIFFE principal, so a policy
//! of a thousand per-workload rules decides in tens of nanoseconds); [`Policy::evaluate`] is the
//! per-request hot path and allocates nothing, except to join the values of a header the request repeats (A43 matches
//! them as one comma-separated value) and to decode a `-bin` value a rule looks at.

mod document;
mod error;
mod index;
mod lint;
mod matcher;
mod policy;

pub use error::PolicyError;
pub use lint::{Explanation, Finding, MethodCoverage, Severity};
pub use policy::{AuditCondition, Decision, Policy, Request};
