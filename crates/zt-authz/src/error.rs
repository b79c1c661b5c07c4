//! Why a policy document was refused.

/// A policy that does not parse or breaks a rule of the format.
///
/// Every variant but [`PolicyError::Json`] names the JSON path of the offending value, as in
/// `allow_rules[0].source: expected an object, found null`; the caller adds the file name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not JSON at all (the message gives the line and column).
    #[error("invalid policy JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A value of the wrong JSON type. `null` is a wrong type too: it is never read as
    /// "absent", because an absent rule part matches everything.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// Where the value is.
        path: String,
        /// The type the schema requires there.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A field the schema does not have (a typo must never silently widen access).
    #[error("{path}: unknown field (expected one of: {})", allowed.join(", "))]
    UnknownField {
        /// The unknown field's path.
        path: String,
        /// The fields allowed in that object.
        allowed: &'static [&'static str],
    },
    /// A key written twice in one object; JSON readers disagree on which one wins.
    #[error("{path}: written twice in one object")]
    DuplicateKey {
        /// The repeated key's path.
        path: String,
    },
    /// A required field is absent or empty: a policy's or rule's `name`, `allow_rules`, a
    /// header's `key` or `values`.
    #[error("{path}: missing or empty")]
    Missing {
        /// The field's path.
        path: String,
    },
    /// A string that must be one of a fixed set (`audit_condition`).
    #[error("{path}: unknown value {value:?} (expected one of: {})", allowed.join(", "))]
    UnknownValue {
        /// Where the value is.
        path: String,
        /// The value as written.
        value: String,
        /// The values allowed.
        allowed: &'static [&'static str],
    },
    /// Two rules in one list share a name, so audit lines could not tell them apart.
    #[error("{path}.name: {name:?} is already the name of {first}")]
    DuplicateRule {
        /// The second rule's path.
        path: String,
        /// The repeated name.
        name: String,
        /// The first rule's path.
        first: String,
    },
    /// A header matcher that A43 forbids or that cannot match.
    #[error("{path}.key: {key:?}: {reason}")]
    Header {
        /// The header matcher's path.
        path: String,
        /// The header key as written.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `spiffe://` principal pattern that is not a SPIFFE ID or a segment wildcard.
    #[error("{path}: {pattern:?}: {reason}")]
    SpiffePattern {
        /// The pattern's path.
        path: String,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An audit logger this implementation does not provide, not marked `is_optional` (A59).
    #[error(
        "{path}: audit logger {name:?} is not supported (only \"stdout_logger\"); mark it \"is_optional\" to skip it"
    )]
    UnknownAuditLogger {
        /// The logger entry's path.
        path: String,
        /// The logger's name.
        name: String,
    },
    /// A `stdout_logger` with a non-empty `config`: it takes none, and a setting that would
    /// be ignored is refused rather than trusted in silence.
    #[error("{path}: \"stdout_logger\" takes no configuration; write \"config\": {{}}")]
    LoggerConfig {
        /// The logger entry's path.
        path: String,
    },
}
