//! The A43 document model, its compilation, and the per-request evaluation.

use std::collections::HashSet;

use http::{HeaderMap, HeaderName};
use serde::Deserialize;
use zt_identity::PeerIdentity;

use crate::error::PolicyError;
use crate::index::RuleIndex;
use crate::matcher::{SpiffeMatch, StringMatch};

// ===== the JSON document, as grpc-go reads it =====

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    name: String,
    #[serde(default)]
    deny_rules: Option<Vec<RuleDoc>>,
    #[serde(default)]
    allow_rules: Option<Vec<RuleDoc>>,
    #[serde(default)]
    audit_logging_options: Option<AuditLoggingOptionsDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    #[serde(default)]
    name: String,
    #[serde(default)]
    source: Option<SourceDoc>,
    #[serde(default)]
    request: Option<RequestDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceDoc {
    #[serde(default)]
    principals: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestDoc {
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    headers: Option<Vec<HeaderDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderDoc {
    #[serde(default)]
    key: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditLoggingOptionsDoc {
    #[serde(default)]
    audit_condition: AuditCondition,
    #[serde(default)]
    audit_loggers: Option<Vec<AuditLoggerDoc>>,
}

/// One entry of `audit_loggers`, in either spelling: grpc-go's
/// `{"name": "stdout_logger", "config": {}, "is_optional": false}`, or the keyed shorthand
/// `{"stdout_logger": {}}` (the logger's name as the only key, its config as the value).
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "an audit logger: {\"name\": ..., \"config\": ..., \"is_optional\": ...} or {\"<logger name>\": {config}}"
)]
enum AuditLoggerDoc {
    Named(NamedAuditLoggerDoc),
    Keyed(std::collections::BTreeMap<String, serde_json::Value>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedAuditLoggerDoc {
    name: String,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted for grpc-go compatibility; stdout_logger takes no config"
    )]
    config: Option<serde_json::Value>,
    #[serde(default)]
    is_optional: bool,
}

/// When A59 audit lines are written (`audit_logging_options.audit_condition`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditCondition {
    /// Never (the default).
    #[default]
    None,
    /// For denied requests.
    OnDeny,
    /// For allowed requests.
    OnAllow,
    /// For every request.
    OnDenyAndAllow,
}

impl AuditCondition {
    /// Whether a decision with this outcome is audited.
    pub fn audits(self, allowed: bool) -> bool {
        match self {
            Self::None => false,
            Self::OnDeny => !allowed,
            Self::OnAllow => allowed,
            Self::OnDenyAndAllow => true,
        }
    }
}

// ===== the compiled policy =====

/// A compiled, immutable authorization policy.
#[derive(Debug, Clone)]
pub struct Policy {
    name: Box<str>,
    pub(crate) deny: Vec<Rule>,
    pub(crate) allow: Vec<Rule>,
    deny_index: RuleIndex,
    allow_index: RuleIndex,
    audit_condition: AuditCondition,
    audit_to_stdout: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: Box<str>,
    /// Empty: any peer, authenticated or not (as in A43).
    pub(crate) principals: Vec<PrincipalMatch>,
    /// Empty: any method.
    pub(crate) paths: Vec<StringMatch>,
    /// All must match.
    pub(crate) headers: Vec<HeaderMatch>,
}

#[derive(Debug, Clone)]
pub(crate) enum PrincipalMatch {
    /// A43 raw matching against each URI SAN, then each DNS SAN, then the subject.
    Raw(StringMatch),
    /// SPIFFE-aware matching against the validated SPIFFE ID only.
    Spiffe(SpiffeMatch),
}

#[derive(Debug, Clone)]
pub(crate) struct HeaderMatch {
    pub(crate) name: HeaderName,
    /// Any may match.
    pub(crate) values: Vec<StringMatch>,
}

/// What the evaluator needs to know about one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The gRPC method, `/package.Service/Method` (the HTTP/2 `:path`).
    pub path: &'a str,
    /// The authenticated peer; `None` when the peer presented no usable certificate.
    pub peer: Option<&'a PeerIdentity>,
    /// The request headers (gRPC metadata).
    pub headers: &'a HeaderMap,
}

/// The result of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'p> {
    /// An allow rule matched and no deny rule did.
    Allow {
        /// The allow rule's name.
        rule: &'p str,
    },
    /// A deny rule matched.
    Deny {
        /// The deny rule's name.
        rule: &'p str,
    },
    /// No rule matched: denied by default.
    DefaultDeny,
}

impl<'p> Decision<'p> {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The rule that decided, if any.
    pub fn matched_rule(self) -> Option<&'p str> {
        match self {
            Self::Allow { rule } | Self::Deny { rule } => Some(rule),
            Self::DefaultDeny => None,
        }
    }
}

impl Policy {
    /// Parses and compiles a policy. Unknown fields are errors: a misspelt key must never
    /// silently widen access.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let doc: PolicyDoc = serde_json::from_str(json)?;
        if doc.name.is_empty() {
            return Err(PolicyError::MissingName);
        }
        let allow_docs = doc.allow_rules.unwrap_or_default();
        if allow_docs.is_empty() {
            return Err(PolicyError::NoAllowRules);
        }
        let deny = compile_rules("deny_rules", doc.deny_rules.unwrap_or_default())?;
        let allow = compile_rules("allow_rules", allow_docs)?;

        let audit = doc.audit_logging_options;
        let audit_condition = audit
            .as_ref()
            .map(|a| a.audit_condition)
            .unwrap_or_default();
        let mut audit_to_stdout = false;
        for logger in audit.and_then(|a| a.audit_loggers).unwrap_or_default() {
            let (names, optional) = match logger {
                AuditLoggerDoc::Named(named) => (vec![named.name], named.is_optional),
                AuditLoggerDoc::Keyed(keyed) => (keyed.into_keys().collect(), false),
            };
            for name in names {
                match name.as_str() {
                    "stdout_logger" => audit_to_stdout = true,
                    _ if optional => {}
                    _ => return Err(PolicyError::UnknownAuditLogger(name)),
                }
            }
        }
        Ok(Self {
            name: doc.name.into(),
            deny_index: RuleIndex::new(&deny),
            allow_index: RuleIndex::new(&allow),
            deny,
            allow,
            audit_condition,
            audit_to_stdout,
        })
    }

    /// The policy's name (`policy_name` in audit lines).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When decisions are audited.
    pub fn audit_condition(&self) -> AuditCondition {
        self.audit_condition
    }

    /// Whether the policy asks for A59 `stdout_logger` audit lines.
    pub fn audit_to_stdout(&self) -> bool {
        self.audit_to_stdout
    }

    /// Names of the deny rules, then of the allow rules, in document order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.deny.iter().chain(&self.allow).map(|r| &*r.name)
    }

    /// Decides one request: deny rules, then allow rules, then default deny.
    pub fn evaluate<'p>(&'p self, request: &Request<'_>) -> Decision<'p> {
        let first = |rules: &'p [Rule], index: &RuleIndex| {
            index
                .candidates(request.peer)
                .filter_map(|position| rules.get(position))
                .find(|rule| rule.matches(request))
        };
        if let Some(rule) = first(&self.deny, &self.deny_index) {
            return Decision::Deny { rule: &rule.name };
        }
        if let Some(rule) = first(&self.allow, &self.allow_index) {
            return Decision::Allow { rule: &rule.name };
        }
        Decision::DefaultDeny
    }
}

fn compile_rules(list: &'static str, docs: Vec<RuleDoc>) -> Result<Vec<Rule>, PolicyError> {
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(docs.len());
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.name.is_empty() {
            return Err(PolicyError::UnnamedRule { list, index });
        }
        if !seen.insert(doc.name.clone()) {
            return Err(PolicyError::DuplicateRule {
                list,
                name: doc.name,
            });
        }
        rules.push(Rule::compile(doc)?);
    }
    Ok(rules)
}

/// Header keys A43 refuses: routing and hop-by-hop headers, which a client or proxy can set or
/// strip at will, and gRPC's own transport headers.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Rule {
    fn compile(doc: RuleDoc) -> Result<Self, PolicyError> {
        let name = doc.name;
        let principals = doc
            .source
            .and_then(|s| s.principals)
            .unwrap_or_default()
            .into_iter()
            .map(|pattern| {
                if pattern.starts_with("spiffe://") {
                    SpiffeMatch::new(&pattern)
                        .map(PrincipalMatch::Spiffe)
                        .map_err(|reason| PolicyError::SpiffePattern {
                            rule: name.clone(),
                            pattern,
                            reason,
                        })
                } else {
                    Ok(PrincipalMatch::Raw(StringMatch::new(&pattern)))
                }
            })
            .collect::<Result<_, _>>()?;

        let request = doc.request;
        let paths = request
            .as_ref()
            .and_then(|r| r.paths.as_ref())
            .map(|paths| paths.iter().map(|p| StringMatch::new(p)).collect())
            .unwrap_or_default();
        let headers = request
            .and_then(|r| r.headers)
            .unwrap_or_default()
            .into_iter()
            .map(|header| HeaderMatch::compile(&name, header))
            .collect::<Result<_, _>>()?;

        Ok(Self {
            name: name.into(),
            principals,
            paths,
            headers,
        })
    }

    pub(crate) fn matches(&self, request: &Request<'_>) -> bool {
        (self.principals.is_empty() || self.principals.iter().any(|p| p.matches(request.peer)))
            && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(request.path)))
            && self.headers.iter().all(|h| h.matches(request.headers))
    }
}

impl PrincipalMatch {
    fn matches(&self, peer: Option<&PeerIdentity>) -> bool {
        match (self, peer) {
            // A43: without a client certificate only the empty principal matches.
            (Self::Raw(pattern), None) => pattern.matches(""),
            (Self::Spiffe(_), None) => false,
            (Self::Raw(pattern), Some(peer)) => {
                pattern.matches(peer.spiffe_id().as_str())
                    || peer.dns_names().iter().any(|dns| pattern.matches(dns))
                    || pattern.matches(peer.subject())
            }
            (Self::Spiffe(pattern), Some(peer)) => pattern.matches(peer.spiffe_id()),
        }
    }
}

impl HeaderMatch {
    fn compile(rule: &str, doc: HeaderDoc) -> Result<Self, PolicyError> {
        let key = doc.key.to_ascii_lowercase();
        let fail = |reason| PolicyError::Header {
            rule: rule.to_owned(),
            key: doc.key.clone(),
            reason,
        };
        if key.is_empty() {
            return Err(fail("\"key\" is missing or empty"));
        }
        if key.starts_with(':') || key.starts_with("grpc-") || FORBIDDEN_HEADERS.contains(&&*key) {
            return Err(fail(
                "pseudo, hop-by-hop, host and grpc-* headers cannot be matched",
            ));
        }
        let name =
            HeaderName::from_bytes(key.as_bytes()).map_err(|_| fail("not a valid header name"))?;
        let values: Vec<_> = doc
            .values
            .unwrap_or_default()
            .iter()
            .map(|v| StringMatch::new(v))
            .collect();
        if values.is_empty() {
            return Err(fail("\"values\" is missing or empty"));
        }
        Ok(Self { name, values })
    }

    fn matches(&self, headers: &HeaderMap) -> bool {
        let mut all = headers.get_all(&self.name).iter();
        let Some(first) = all.next() else {
            return false;
        };
        let Ok(first) = first.to_str() else {
            return false;
        };
        let rest: Vec<_> = all.collect();
        if rest.is_empty() {
            return self.values.iter().any(|v| v.matches(first));
        }
        // A43: a header sent several times is matched as its values joined with ','.
        let mut joined = first.to_owned();
        for value in rest {
            let Ok(value) = value.to_str() else {
                return false;
            };
            joined.push(',');
            joined.push_str(value);
        }
        self.values.iter().any(|v| v.matches(&joined))
    }
}
