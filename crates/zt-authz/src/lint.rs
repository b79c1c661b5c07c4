//! Static analysis of a policy against the methods a server serves: the logic behind
//! `ledger policy check`, `policy coverage` and `policy explain`.
//!
//! Everything here is pure: the served methods (full gRPC paths, `/pkg.Service/Method`) are
//! passed in, so the same checks run in a user's CI against their own descriptor sets.
//! Because the method set is finite, "which methods does this rule reach" is computed exactly;
//! principals and headers are compared pattern by pattern, conservatively (a shadowed rule is
//! only reported when that is certain).

use std::fmt;

use crate::matcher::{SpiffeMatch, StringMatch};
use crate::policy::{Decision, HeaderMatch, Policy, PrincipalMatch, Request, Rule};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look; not wrong in itself.
    Warning,
    /// The policy does not do what it says: a rule that never applies, a method that does
    /// not exist.
    Error,
}

/// One problem `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// `deny_rules` or `allow_rules`.
    pub list: &'static str,
    /// The rule's name.
    pub rule: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{severity}: {}[{}]: {}",
            self.list, self.rule, self.message
        )
    }
}

/// Who may call one served method, according to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodCoverage<'p> {
    /// The method's full path.
    pub method: String,
    /// A deny rule that applies to every caller of the method: it is deliberately closed.
    pub closed_by: Option<&'p str>,
    /// Allow rules that let someone call it, with the principals they name (`*` for any).
    pub allowed_by: Vec<(&'p str, Vec<String>)>,
}

impl MethodCoverage<'_> {
    /// Whether the policy says something about the method: someone may call it, or it is
    /// explicitly closed. An uncovered method is denied by default, which is safe but usually
    /// a mistake (a new RPC nobody wrote a rule for).
    pub fn is_covered(&self) -> bool {
        self.closed_by.is_some() || !self.allowed_by.is_empty()
    }
}

/// The decision for one request, and every rule that matched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation<'p> {
    /// What the server would do.
    pub decision: Decision<'p>,
    /// Deny rules that match, in order; the first decides.
    pub matching_deny: Vec<&'p str>,
    /// Allow rules that match, in order; the first decides if no deny rule matched.
    pub matching_allow: Vec<&'p str>,
}

const LISTS: [&str; 2] = ["deny_rules", "allow_rules"];

impl Policy {
    /// Checks the policy against the server's `methods`: paths that name no served method,
    /// rules that can never match or are shadowed by earlier ones (or, for allow rules, by
    /// a deny rule), and principals that admit more than they seem to.
    pub fn check(&self, methods: &[String]) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (list, rules) in LISTS.into_iter().zip([&self.deny, &self.allow]) {
            for (index, rule) in rules.iter().enumerate() {
                let mut report = |severity, message: String| {
                    findings.push(Finding {
                        severity,
                        list,
                        rule: rule.name.to_string(),
                        message,
                    });
                };
                for path in &rule.paths {
                    if !methods.iter().any(|m| path.matches(m)) {
                        let hint = if path.to_string().starts_with('/') {
                            ""
                        } else {
                            " (gRPC paths look like /package.Service/Method)"
                        };
                        report(
                            Severity::Error,
                            format!("path \"{path}\" matches no served method{hint}"),
                        );
                    }
                }
                let patterns = rule
                    .principals
                    .iter()
                    .filter_map(|principal| match principal {
                        PrincipalMatch::Raw(pattern) => Some(("principal", pattern)),
                        PrincipalMatch::Spiffe(_) => None,
                    })
                    .chain(rule.paths.iter().map(|path| ("path", path)))
                    .chain(rule.headers.iter().flat_map(|header| {
                        header.values.iter().map(|value| ("header value", value))
                    }));
                for (what, pattern) in patterns {
                    if pattern.is_two_sided() {
                        report(
                            Severity::Warning,
                            format!(
                                "{what} \"{pattern}\" is read as a prefix (values starting with \
                                 \"{}\"), as grpc-go reads it; gRPC C++ reads it as a suffix, \
                                 and neither reads \"contains\": write a prefix or a suffix",
                                pattern.to_string().trim_end_matches('*')
                            ),
                        );
                    }
                }
                let reach = rule.reach(methods);
                if reach.is_empty() {
                    report(
                        Severity::Error,
                        "can never match: it reaches no served method".into(),
                    );
                    continue;
                }
                for principal in &rule.principals {
                    if let Some(message) = principal.lint() {
                        report(message.0, message.1);
                    }
                }
                if rule.principals.is_empty() && list == "allow_rules" {
                    report(
                        Severity::Warning,
                        "no principals: allows every authenticated peer of every trusted \
                         trust domain"
                            .into(),
                    );
                }
                if let Some(earlier) = rules[..index]
                    .iter()
                    .find(|earlier| earlier.covers(rule, &reach))
                {
                    report(
                        Severity::Error,
                        format!(
                            "shadowed by the earlier rule \"{}\", which matches every request \
                             this one does: it never decides anything",
                            earlier.name
                        ),
                    );
                } else if list == "allow_rules"
                    && let Some(deny) = self.deny.iter().find(|deny| deny.covers(rule, &reach))
                {
                    report(
                        Severity::Error,
                        format!(
                            "never allows anything: deny rule \"{}\" matches every request \
                             this one does, and deny rules come first",
                            deny.name
                        ),
                    );
                }
            }
        }
        findings
    }

    /// For every served method, who may call it, or which deny rule closes it.
    pub fn coverage<'p>(&'p self, methods: &[String]) -> Vec<MethodCoverage<'p>> {
        methods
            .iter()
            .map(|method| {
                let only = std::slice::from_ref(method);
                let closed_by = self
                    .deny
                    .iter()
                    .find(|deny| {
                        deny.principals.is_empty()
                            && deny.headers.is_empty()
                            && !deny.reach(only).is_empty()
                    })
                    .map(|deny| &*deny.name);
                // A closed method is closed for everyone: its allow rules are dead.
                let allowed_by = if closed_by.is_some() {
                    Vec::new()
                } else {
                    self.allow
                        .iter()
                        .filter(|allow| {
                            !allow.reach(only).is_empty()
                                && !self.deny.iter().any(|deny| deny.covers(allow, only))
                        })
                        .map(|allow| (&*allow.name, allow.principal_names()))
                        .collect()
                };
                MethodCoverage {
                    method: method.clone(),
                    closed_by,
                    allowed_by,
                }
            })
            .collect()
    }

    /// The rules whose paths reach `method` (a full gRPC path), as (`deny_rules` or
    /// `allow_rules`, rule name), deny rules first, each list in policy order: the rules that
    /// can decide a request for it, whoever calls. For tooling, and to create a metric series
    /// per rule before its first decision.
    pub fn rules_reaching<'p>(
        &'p self,
        method: &str,
    ) -> impl Iterator<Item = (&'static str, &'p str)> {
        let only = [method];
        let reaching: Vec<_> = LISTS
            .into_iter()
            .zip([&self.deny, &self.allow])
            .flat_map(|(list, rules)| rules.iter().map(move |rule| (list, rule)))
            .filter(|(_, rule)| !rule.reach(&only).is_empty())
            .map(|(list, rule)| (list, &*rule.name))
            .collect();
        reaching.into_iter()
    }

    /// The decision for `request`, with every rule that matches it.
    pub fn explain<'p>(&'p self, request: &Request<'_>) -> Explanation<'p> {
        let matching = |rules: &'p [Rule]| {
            rules
                .iter()
                .filter(|rule| rule.matches(request))
                .map(|rule| &*rule.name)
                .collect()
        };
        Explanation {
            decision: self.evaluate(request),
            matching_deny: matching(&self.deny),
            matching_allow: matching(&self.allow),
        }
    }
}

impl Rule {
    /// The principal patterns as written, `*` if there are none.
    fn principal_names(&self) -> Vec<String> {
        if self.principals.is_empty() {
            vec!["*".to_owned()]
        } else {
            self.principals.iter().map(ToString::to_string).collect()
        }
    }

    /// The served methods this rule can match.
    fn reach<'m, M: AsRef<str>>(&self, methods: &'m [M]) -> Vec<&'m M> {
        methods
            .iter()
            .filter(|m| self.paths.is_empty() || self.paths.iter().any(|p| p.matches(m.as_ref())))
            .collect()
    }

    /// Whether this rule matches every request `other` matches, on the methods `other`
    /// reaches (`reach`): its paths take in all of them, its principals all of `other`'s,
    /// and every header it requires is implied by one `other` requires.
    fn covers(&self, other: &Rule, reach: &[impl AsRef<str>]) -> bool {
        let paths = reach
            .iter()
            .all(|m| self.paths.is_empty() || self.paths.iter().any(|p| p.matches(m.as_ref())));
        let principals = self.principals.is_empty()
            || (!other.principals.is_empty()
                && other
                    .principals
                    .iter()
                    .all(|theirs| self.principals.iter().any(|ours| ours.covers(theirs))));
        let headers = self
            .headers
            .iter()
            .all(|ours| other.headers.iter().any(|theirs| ours.implied_by(theirs)));
        paths && principals && headers
    }
}

impl PrincipalMatch {
    fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Raw(ours), Self::Raw(theirs)) => ours.covers(theirs),
            (Self::Spiffe(ours), Self::Spiffe(theirs)) => ours.covers(theirs),
            // A raw pattern is tried against the SPIFFE ID too, so it covers a SPIFFE pattern
            // whose every ID it matches.
            (Self::Raw(ours), Self::Spiffe(theirs)) => match theirs {
                SpiffeMatch::Exact(id) => ours.matches(id.as_str()),
                SpiffeMatch::Under { .. } => {
                    ours.covers(&StringMatch::Prefix(theirs.common_prefix().into()))
                }
            },
            (Self::Spiffe(_), Self::Raw(_)) => false,
        }
    }

    /// A principal that admits more (or less) than it seems to.
    fn lint(&self) -> Option<(Severity, String)> {
        match self {
            Self::Raw(StringMatch::Present) => Some((
                Severity::Warning,
                "principal \"*\" matches every authenticated peer of every trusted trust \
                 domain; name the workloads, or use spiffe://<trust-domain>/*"
                    .into(),
            )),
            Self::Raw(StringMatch::Exact(empty)) if empty.is_empty() => Some((
                Severity::Error,
                "principal \"\" matches only unauthenticated peers, and this server lets none \
                 through (mutual TLS is required)"
                    .into(),
            )),
            Self::Raw(pattern) if pattern.to_string().contains('=') => Some((
                Severity::Warning,
                format!(
                    "principal \"{pattern}\" can only match the certificate's subject, and gRPC \
                     implementations write a subject differently (this server as grpc-go does, \
                     CN=a,O=b; gRPC C++ as OpenSSL's RFC 2253); prefer a spiffe:// principal"
                ),
            )),
            Self::Raw(pattern) => Some((
                Severity::Warning,
                format!(
                    "principal \"{pattern}\" is matched as a raw string against the SPIFFE ID, \
                     every DNS name and the subject; a spiffe:// pattern matches the verified \
                     SPIFFE ID only"
                ),
            )),
            Self::Spiffe(_) => None,
        }
    }
}

impl fmt::Display for PrincipalMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Raw(pattern) => pattern.fmt(f),
            Self::Spiffe(pattern) => pattern.fmt(f),
        }
    }
}

impl HeaderMatch {
    /// Whether every request that satisfies `theirs` satisfies this one too.
    fn implied_by(&self, theirs: &HeaderMatch) -> bool {
        self.name == theirs.name
            && theirs
                .values
                .iter()
                .all(|value| self.values.iter().any(|ours| ours.covers(value)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is a failed assertion")]
    use super::*;

    fn methods() -> Vec<String> {
        [
            "/bank.v1.Bank/Get",
            "/bank.v1.Bank/Move",
            "/grpc.health.v1.Health/Check",
        ]
        .map(String::from)
        .to_vec()
    }

    fn policy(deny: &str, allow: &str) -> Policy {
        Policy::from_json(&format!(
            r#"{{"name":"p","deny_rules":[{deny}],"allow_rules":[{allow}]}}"#
        ))
        .unwrap()
    }

    fn rule(name: &str, principals: &[&str], paths: &[&str]) -> String {
        serde_json::json!({
            "name": name,
            "source": {"principals": principals},
            "request": {"paths": paths},
        })
        .to_string()
    }

    fn messages(policy: &Policy) -> Vec<String> {
        policy
            .check(&methods())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const PAY: &str = "spiffe://td/sa/pay";

    #[test]
    fn a_clean_policy_has_no_findings() {
        let p = policy(
            "",
            &[
                rule("pay", &[PAY], &["/bank.v1.Bank/*"]),
                rule(
                    "health",
                    &["spiffe://td/*"],
                    &["/grpc.health.v1.Health/Check"],
                ),
            ]
            .join(","),
        );
        assert_eq!(messages(&p), Vec::<String>::new());
    }

    #[test]
    fn paths_naming_no_served_method_are_errors() {
        let p = policy(
            "",
            &[
                rule("typo", &[PAY], &["/bank.v1.Bank/Mvoe", "/bank.v1.Bank/Get"]),
                rule("gone", &[PAY], &["/bank.v2.Bank/*"]),
                rule("no-slash", &[PAY], &["bank.v1.Bank/Get"]),
            ]
            .join(","),
        );
        let found = messages(&p);
        assert!(
            found.contains(
                &"error: allow_rules[typo]: path \"/bank.v1.Bank/Mvoe\" matches no served method"
                    .into()
            ),
            "{found:#?}"
        );
        assert!(
            !found.iter().any(|f| f.contains("[typo]: can never match")),
            "typo still reaches Get: {found:#?}"
        );
        assert!(
            found.contains(
                &"error: allow_rules[gone]: can never match: it reaches no served method".into()
            ),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("[no-slash]") && f.contains("look like /package")),
            "{found:#?}"
        );
    }

    #[test]
    fn shadowed_rules_are_errors_and_only_when_certain() {
        let p = policy(
            &rule("no-moves", &["spiffe://td/*"], &["/bank.v1.Bank/Move"]),
            &[
                rule("all-bank", &["spiffe://td/sa/*"], &["/bank.v1.Bank/*"]),
                rule("pay-get", &[PAY], &["/bank.v1.Bank/Get"]),
                rule("pay-move", &[PAY], &["/bank.v1.Bank/Move"]),
                rule(
                    "other-domain",
                    &["spiffe://partner/sa/pay"],
                    &["/bank.v1.Bank/Get"],
                ),
            ]
            .join(","),
        );
        let found = messages(&p);
        assert!(
            found.iter().any(|f| f.starts_with(
                "error: allow_rules[pay-get]: shadowed by the earlier rule \"all-bank\""
            )),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("error: allow_rules[pay-move]: shadowed")),
            "{found:#?}"
        );
        assert!(
            !found.iter().any(|f| f.contains("[other-domain]")),
            "another trust domain is not covered: {found:#?}"
        );
    }

    #[test]
    fn an_allow_rule_under_a_deny_rule_is_dead() {
        let p = policy(
            &rule("no-moves", &[], &["/bank.v1.Bank/Move"]),
            &[
                rule("pay-move", &[PAY], &["/bank.v1.Bank/Move"]),
                rule("pay-all", &[PAY], &["/bank.v1.Bank/*"]),
            ]
            .join(","),
        );
        let found = messages(&p);
        assert!(
            found.iter().any(|f| f.starts_with(
                "error: allow_rules[pay-move]: never allows anything: deny rule \"no-moves\""
            )),
            "{found:#?}"
        );
        assert!(
            !found.iter().any(|f| f.contains("[pay-all]")),
            "pay-all still allows Get: {found:#?}"
        );
    }

    #[test]
    fn header_conditions_keep_a_rule_alive() {
        let with_header = serde_json::json!({
            "name": "canary",
            "source": {"principals": [PAY]},
            "request": {"paths": ["/bank.v1.Bank/Get"],
                        "headers": [{"key": "x-canary", "values": ["1"]}]},
        })
        .to_string();
        // The later rule needs a header the earlier one does not: the earlier covers it.
        let p = policy(
            "",
            &[
                rule("pay", &[PAY], &["/bank.v1.Bank/Get"]),
                with_header.clone(),
            ]
            .join(","),
        );
        assert!(
            messages(&p)
                .iter()
                .any(|f| f.contains("[canary]: shadowed"))
        );
        // The other way round, the plain rule matches requests without the header.
        let p = policy(
            "",
            &[with_header, rule("pay", &[PAY], &["/bank.v1.Bank/Get"])].join(","),
        );
        assert_eq!(messages(&p), Vec::<String>::new());
    }

    #[test]
    fn wide_principals_are_flagged() {
        let p = policy(
            "",
            &[
                rule("anyone", &["*"], &["/bank.v1.Bank/Get"]),
                rule("raw", &["pay.internal"], &["/bank.v1.Bank/Move"]),
                rule("unauthenticated", &[""], &["/grpc.health.v1.Health/Check"]),
            ]
            .join(","),
        );
        let found = messages(&p);
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("warning: allow_rules[anyone]: principal \"*\""))
        );
        assert!(found.iter().any(|f| f.starts_with(
            "warning: allow_rules[raw]: principal \"pay.internal\" is matched as a raw string"
        )));
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("error: allow_rules[unauthenticated]: principal \"\""))
        );
    }

    #[test]
    fn implementation_specific_patterns_are_flagged() {
        let with_header = serde_json::json!({
            "name": "header",
            "source": {"principals": [PAY]},
            "request": {"paths": ["/bank.v1.Bank/Get"],
                        "headers": [{"key": "x-role", "values": ["*admin*"]}]},
        })
        .to_string();
        let p = policy(
            "",
            &[
                rule(
                    "subject",
                    &["CN=legacy-batch,O=bughunt"],
                    &["/bank.v1.Bank/Get"],
                ),
                rule("two-sided", &["*pay*"], &["*Bank*"]),
                with_header,
            ]
            .join(","),
        );
        let found = messages(&p);
        let has = |start: &str| found.iter().any(|f| f.starts_with(start));
        assert!(
            has(
                "warning: allow_rules[subject]: principal \"CN=legacy-batch,O=bughunt\" can only \
             match the certificate's subject, and gRPC implementations write a subject differently"
            ),
            "{found:#?}"
        );
        for start in [
            "warning: allow_rules[two-sided]: principal \"*pay*\" is read as a prefix (values \
             starting with \"*pay\")",
            "warning: allow_rules[two-sided]: path \"*Bank*\" is read as a prefix",
            "warning: allow_rules[header]: header value \"*admin*\" is read as a prefix",
        ] {
            assert!(has(start), "{start}\n{found:#?}");
        }
        // A plain prefix or suffix is not flagged.
        assert!(!found.iter().any(|f| f.contains("\"pay*\" is read")));
    }

    #[test]
    fn rules_reaching_a_method_deny_first_in_order() {
        let p = policy(
            &[
                rule(
                    "no-moves",
                    &["spiffe://td/sa/auditor"],
                    &["/bank.v1.Bank/Move"],
                ),
                rule("health-closed", &[], &["/grpc.health.v1.Health/*"]),
            ]
            .join(","),
            &[
                rule("pay", &[PAY], &["/bank.v1.Bank/*"]),
                rule("get", &[PAY], &["/bank.v1.Bank/Get"]),
            ]
            .join(","),
        );
        let reaching = |method| p.rules_reaching(method).collect::<Vec<_>>();
        assert_eq!(
            reaching("/bank.v1.Bank/Move"),
            [("deny_rules", "no-moves"), ("allow_rules", "pay")]
        );
        assert_eq!(
            reaching("/bank.v1.Bank/Get"),
            [("allow_rules", "pay"), ("allow_rules", "get")]
        );
        assert_eq!(
            reaching("/grpc.health.v1.Health/Check"),
            [("deny_rules", "health-closed")]
        );
        assert!(reaching("/other.v1.X/Y").is_empty());
    }

    #[test]
    fn coverage_lists_who_may_call_each_method() {
        let p = policy(
            &[
                rule(
                    "no-moves-for-auditor",
                    &["spiffe://td/sa/auditor"],
                    &["/bank.v1.Bank/Move"],
                ),
                rule("health-closed", &[], &["/grpc.health.v1.Health/*"]),
            ]
            .join(","),
            &[
                rule("pay", &[PAY], &["/bank.v1.Bank/*"]),
                rule(
                    "auditor-move",
                    &["spiffe://td/sa/auditor"],
                    &["/bank.v1.Bank/Move"],
                ),
            ]
            .join(","),
        );
        let coverage = p.coverage(&methods());
        assert_eq!(
            coverage[0].allowed_by,
            [("pay", vec![PAY.to_owned()])],
            "Get"
        );
        assert_eq!(
            coverage[1].allowed_by,
            [("pay", vec![PAY.to_owned()])],
            "Move: the auditor's allow rule is dead"
        );
        assert_eq!(coverage[2].closed_by, Some("health-closed"));
        assert!(coverage.iter().all(MethodCoverage::is_covered));

        let uncovered = policy("", &rule("pay", &[PAY], &["/bank.v1.Bank/Get"]));
        let coverage = uncovered.coverage(&methods());
        let missing: Vec<_> = coverage
            .iter()
            .filter(|c| !c.is_covered())
            .map(|c| c.method.as_str())
            .collect();
        assert_eq!(
            missing,
            ["/bank.v1.Bank/Move", "/grpc.health.v1.Health/Check"]
        );
    }
}
