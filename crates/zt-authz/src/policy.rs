//! The A43 document model, its compilation, and the per-request evaluation.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use zt_identity::PeerIdentity;

use crate::document::{HeaderDoc, PolicyDoc, RuleDoc};
use crate::error::PolicyError;
use crate::index::RuleIndex;
use crate::matcher::{SpiffeMatch, StringMatch};

/// When A59 audit lines are written (`audit_logging_options.audit_condition`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    /// The names A59 gives the conditions, as written in a policy.
    pub const NAMES: &'static [&'static str] =
        &["NONE", "ON_DENY", "ON_ALLOW", "ON_DENY_AND_ALLOW"];

    /// The condition named `name` (one of [`AuditCondition::NAMES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "NONE" => Self::None,
            "ON_DENY" => Self::OnDeny,
            "ON_ALLOW" => Self::OnAllow,
            "ON_DENY_AND_ALLOW" => Self::OnDenyAndAllow,
            _ => return None,
        })
    }

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
    /// A `-bin` key: values are matched base64-decoded.
    pub(crate) binary: bool,
    /// How a repeated header is matched.
    pub(crate) matching: Matching,
}

/// How a header matcher treats a header the request repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matching {
    /// Allow rules, as A43: the values joined with `,` must match.
    Joined,
    /// Deny rules: the joined value or any single value. A request cannot escape a deny rule
    /// by sending the header twice (the class of Envoy's GHSA-ghc4-35x6-crw5).
    FailClosed,
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
    /// Parses and compiles a policy.
    ///
    /// The reader accepts exactly the A43 schema and A59's `audit_logging_options`: a wrong
    /// JSON type (`null` included), an unknown field or a key written twice is a
    /// [`PolicyError`] naming its JSON path, never read as "absent" (an absent rule part
    /// matches every caller). Further errors: an empty policy or rule name, no allow rules,
    /// two rules of one list with one name, a header A43 forbids, a `spiffe://` pattern that
    /// is not segment-wise, an audit logger this crate does not provide.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let doc = PolicyDoc::parse(json)?;
        let deny = compile_rules(doc.deny_rules, Matching::FailClosed)?;
        let allow = compile_rules(doc.allow_rules, Matching::Joined)?;
        let mut audit_to_stdout = false;
        for logger in doc.audit_loggers {
            match logger.name.as_str() {
                "stdout_logger" if logger.configured => {
                    return Err(PolicyError::LoggerConfig { path: logger.path });
                }
                "stdout_logger" => audit_to_stdout = true,
                _ if logger.is_optional => {}
                _ => {
                    return Err(PolicyError::UnknownAuditLogger {
                        path: logger.path,
                        name: logger.name,
                    });
                }
            }
        }
        Ok(Self {
            name: doc.name.into(),
            deny_index: RuleIndex::new(&deny),
            allow_index: RuleIndex::new(&allow),
            deny,
            allow,
            audit_condition: doc.audit_condition,
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

fn compile_rules(docs: Vec<RuleDoc>, matching: Matching) -> Result<Vec<Rule>, PolicyError> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut rules = Vec::with_capacity(docs.len());
    for doc in docs {
        if let Some(first) = seen.get(&doc.name) {
            return Err(PolicyError::DuplicateRule {
                path: doc.path,
                name: doc.name,
                first: first.clone(),
            });
        }
        seen.insert(doc.name.clone(), doc.path.clone());
        rules.push(Rule::compile(doc, matching)?);
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
    fn compile(doc: RuleDoc, matching: Matching) -> Result<Self, PolicyError> {
        let principals = doc
            .principals
            .into_iter()
            .enumerate()
            .map(|(index, pattern)| {
                if pattern.starts_with("spiffe://") {
                    SpiffeMatch::new(&pattern)
                        .map(PrincipalMatch::Spiffe)
                        .map_err(|reason| PolicyError::SpiffePattern {
                            path: format!("{}.source.principals[{index}]", doc.path),
                            pattern,
                            reason,
                        })
                } else {
                    Ok(PrincipalMatch::Raw(StringMatch::new(&pattern)))
                }
            })
            .collect::<Result<_, _>>()?;
        let paths = doc.paths.iter().map(|p| StringMatch::new(p)).collect();
        let headers = doc
            .headers
            .into_iter()
            .map(|header| HeaderMatch::compile(header, matching))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: doc.name.into(),
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
    fn compile(doc: HeaderDoc, matching: Matching) -> Result<Self, PolicyError> {
        let key = doc.key.to_ascii_lowercase();
        let fail = |reason| PolicyError::Header {
            path: doc.path.clone(),
            key: doc.key.clone(),
            reason,
        };
        if key.starts_with(':') || key.starts_with("grpc-") || FORBIDDEN_HEADERS.contains(&&*key) {
            return Err(fail(
                "pseudo, hop-by-hop, host and grpc-* headers cannot be matched",
            ));
        }
        let name =
            HeaderName::from_bytes(key.as_bytes()).map_err(|_| fail("not a valid header name"))?;
        Ok(Self {
            binary: key.ends_with("-bin"),
            values: doc.values.iter().map(|v| StringMatch::new(v)).collect(),
            name,
            matching,
        })
    }

    /// Whether the request's values of this header satisfy the matcher.
    ///
    /// One value is matched as it is. A repeated header is matched, as A43 says, as its values
    /// joined with `,`; a deny rule ([`Matching::FailClosed`]) also matches if any single value
    /// does, so sending a header twice cannot dodge it. Binary (`-bin`) values are matched
    /// decoded, as gRPC does; one that is not valid base64 matches a deny rule and no allow rule.
    fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.name).iter();
        let Some(first) = values.next() else {
            return false;
        };
        let Some(second) = values.next() else {
            return self.value_matches(first);
        };
        let fail_closed = self.matching == Matching::FailClosed;
        let mut joined = Vec::new();
        for (position, value) in [first, second].into_iter().chain(values).enumerate() {
            let Some(bytes) = self.decode(value) else {
                return fail_closed;
            };
            if fail_closed && self.any_value_matches(&bytes) {
                return true;
            }
            if position > 0 {
                joined.push(b',');
            }
            joined.extend_from_slice(&bytes);
        }
        self.any_value_matches(&joined)
    }

    fn value_matches(&self, value: &HeaderValue) -> bool {
        match self.decode(value) {
            Some(bytes) => self.any_value_matches(&bytes),
            None => self.matching == Matching::FailClosed,
        }
    }

    fn any_value_matches(&self, bytes: &[u8]) -> bool {
        self.values.iter().any(|v| v.matches_bytes(bytes))
    }

    /// The bytes a value stands for: itself, or for a `-bin` header its base64 decoding
    /// (padded or not, as the gRPC HTTP/2 protocol allows). `None`: not valid base64.
    fn decode<'v>(&self, value: &'v HeaderValue) -> Option<Cow<'v, [u8]>> {
        if !self.binary {
            return Some(Cow::Borrowed(value.as_bytes()));
        }
        BINARY_HEADER.decode(value.as_bytes()).ok().map(Cow::Owned)
    }
}

/// gRPC's `-bin` header encoding: standard base64, padding optional.
const BINARY_HEADER: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);
