//! Why a policy document was refused.

/// A policy that does not parse or breaks a rule of the format. Messages name the rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not JSON, a wrong type, or an unknown field (typos must not silently widen access).
    #[error("invalid policy JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The top-level `name` is missing or empty.
    #[error("\"name\" is missing or empty")]
    MissingName,
    /// `allow_rules` is missing or empty (A43 requires it; an empty allow list denies all).
    #[error("\"allow_rules\" is missing or empty")]
    NoAllowRules,
    /// A rule without a name.
    #[error("{list}[{index}]: \"name\" is missing or empty")]
    UnnamedRule {
        /// `allow_rules` or `deny_rules`.
        list: &'static str,
        /// Position in the list.
        index: usize,
    },
    /// Two rules in one list share a name, so audit lines could not tell them apart.
    #[error("{list}: two rules are named {name:?}")]
    DuplicateRule {
        /// `allow_rules` or `deny_rules`.
        list: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A header matcher that A43 forbids or that cannot match.
    #[error("rule {rule:?}: header {key:?}: {reason}")]
    Header {
        /// The rule's name.
        rule: String,
        /// The header key as written.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `spiffe://` principal pattern that is not a SPIFFE ID or a segment wildcard.
    #[error("rule {rule:?}: principal {pattern:?}: {reason}")]
    SpiffePattern {
        /// The rule's name.
        rule: String,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An audit logger this implementation does not provide, not marked `is_optional`.
    #[error(
        "audit logger {0:?} is not supported (only \"stdout_logger\"); mark it \"is_optional\" to skip it"
    )]
    UnknownAuditLogger(String),
}
