//! Loading a policy file, and vetting it against the served methods.

use std::path::Path;

use zt_authz::{Policy, Severity};

use crate::error::Error;

/// Which policy a file is, in logs: the one enforced, or the shadow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Enforced,
    Shadow,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Enforced => "policy",
            Self::Shadow => "shadow policy",
        }
    }
}

/// Reads and compiles the policy (gRFC A43 JSON) in `path`.
///
/// # Errors
/// [`Error::PolicyRead`] if the file cannot be read, [`Error::Policy`] if it is not a valid
/// policy; both name the file.
pub fn load_policy(path: &Path) -> Result<Policy, Error> {
    let json = std::fs::read_to_string(path).map_err(|source| Error::PolicyRead {
        path: path.to_owned(),
        source,
    })?;
    Policy::from_json(&json).map_err(|source| Error::Policy {
        path: path.to_owned(),
        source,
    })
}

/// What `policy check` (and `policy coverage`) say about the policy in `path`, against the
/// served `methods`: each finding a warning naming the file (target `zt_authz::policy`), at
/// startup and at every reload. With `strict`, an error refuses an enforced policy
/// (`program` names the tool whose `policy check` lists them all).
pub(crate) fn vet_policy(
    path: &Path,
    policy: &Policy,
    role: Role,
    methods: &[String],
    strict: bool,
    program: &str,
) -> Result<(), Error> {
    let findings = policy.check(methods);
    for finding in &findings {
        let severity = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        tracing::warn!(
            target: "zt_authz::policy",
            file = %path.display(),
            role = role.as_str(),
            policy = policy.name(),
            severity,
            rule = %format_args!("{}[{}]", finding.list, finding.rule),
            "{finding}"
        );
    }
    for method in policy.coverage(methods) {
        if !method.is_covered() {
            tracing::warn!(
                target: "zt_authz::policy",
                file = %path.display(),
                role = role.as_str(),
                policy = policy.name(),
                severity = "warning",
                method = %method.method,
                "warning: {} is UNCOVERED: no rule allows it or closes it (denied by default)",
                method.method
            );
        }
    }
    let mut errors = findings.iter().filter(|f| f.severity == Severity::Error);
    match errors.next() {
        Some(first) if strict && role == Role::Enforced => Err(Error::PolicyFindings {
            path: path.to_owned(),
            first: first.to_string(),
            errors: 1 + errors.count(),
            program: program.to_owned(),
        }),
        _ => Ok(()),
    }
}
