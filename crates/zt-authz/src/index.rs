//! An index over a rule list by exact SPIFFE principal.
//!
//! Large policies are mostly one rule per workload (`principals: [spiffe://td/ns/x/sa/y]`).
//! Scanning them in order costs microseconds at a thousand rules; the index hands the
//! evaluator only the rules that can concern the caller (those naming its exact SPIFFE ID,
//! and every rule the index cannot rule out), still in policy order, so the first match, and
//! therefore the reported rule, is the same as a full scan's.

use foldhash::HashMap;
use zt_identity::PeerIdentity;

use crate::matcher::SpiffeMatch;
use crate::policy::{PrincipalMatch, Rule};

/// Candidate rules per caller, as positions in the rule list.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleIndex {
    /// Rules whose every principal is an exact SPIFFE ID, under each of those IDs. Keys come
    /// from the policy and lookups are by authenticated IDs, so foldhash (a fraction of
    /// SipHash's cost on a 40-byte ID) is safe here.
    by_id: HashMap<Box<str>, Vec<usize>>,
    /// Every other rule (patterns, raw principals, no principals): always a candidate.
    always: Vec<usize>,
}

/// Below this many rules a scan is cheaper than hashing the caller's ID.
const INDEX_FROM: usize = 16;

impl RuleIndex {
    pub(crate) fn new(rules: &[Rule]) -> Self {
        let mut index = Self::default();
        if rules.len() < INDEX_FROM {
            index.always = (0..rules.len()).collect();
            return index;
        }
        for (position, rule) in rules.iter().enumerate() {
            let exact_ids: Option<Vec<&str>> = (!rule.principals.is_empty())
                .then(|| {
                    rule.principals
                        .iter()
                        .map(|principal| match principal {
                            PrincipalMatch::Spiffe(SpiffeMatch::Exact(id)) => Some(id.as_str()),
                            _ => None,
                        })
                        .collect()
                })
                .flatten();
            match exact_ids {
                Some(ids) => {
                    for id in ids {
                        let list = index.by_id.entry(id.into()).or_default();
                        // A rule naming the same ID twice is still one candidate.
                        if list.last() != Some(&position) {
                            list.push(position);
                        }
                    }
                }
                None => index.always.push(position),
            }
        }
        index
    }

    /// The positions of the rules that may match `peer`, in ascending order.
    pub(crate) fn candidates(
        &self,
        peer: Option<&PeerIdentity>,
    ) -> impl Iterator<Item = usize> + '_ {
        let named: &[usize] = peer
            .filter(|_| !self.by_id.is_empty())
            .and_then(|peer| self.by_id.get(peer.spiffe_id().as_str()))
            .map_or(&[], Vec::as_slice);
        merge(named, &self.always)
    }
}

/// Two ascending lists with no common element, merged in ascending order.
fn merge<'a>(a: &'a [usize], b: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x < y => a.next().copied(),
        (Some(_), Some(_)) | (None, Some(_)) => b.next().copied(),
        (Some(_), None) => a.next().copied(),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is a failed assertion")]
    use super::*;
    use crate::{Decision, Policy, Request};
    use zt_identity::{TrustDomain, TrustedDomains};

    fn peer(id: &str) -> PeerIdentity {
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(id.try_into().unwrap())];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let der = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        TrustedDomains::new([TrustDomain::new("td").unwrap()])
            .identify(Some(der.der()))
            .unwrap()
    }

    #[test]
    fn merging_keeps_order() {
        let merged: Vec<usize> = merge(&[1, 4, 9], &[0, 2, 3, 10]).collect();
        assert_eq!(merged, [0, 1, 2, 3, 4, 9, 10]);
        assert_eq!(merge(&[], &[5]).collect::<Vec<_>>(), [5]);
    }

    /// The index changes nothing but speed: over every combination of rule shapes, callers
    /// and methods, the decision (and the rule it names) equals a full scan's.
    #[test]
    fn indexed_decisions_equal_a_full_scan() {
        let shapes = [
            r#"{"principals": ["spiffe://td/a"]}"#,
            r#"{"principals": ["spiffe://td/b", "spiffe://td/a"]}"#,
            r#"{"principals": ["spiffe://td/*"]}"#,
            r#"{"principals": ["spiffe://td/a", "spiffe://td/x/*"]}"#,
            r#"{"principals": ["*"]}"#,
            r#"{"principals": ["spiffe://td/b"]}"#,
            r#"{}"#,
        ];
        let paths = [r#"["/s/M"]"#, r#"["/s/*"]"#, r#"["/s/N"]"#];
        let mut rules = Vec::new();
        for (i, shape) in shapes.iter().enumerate() {
            for (j, path) in paths.iter().enumerate() {
                rules.push(format!(
                    r#"{{"name": "r{i}-{j}", "source": {shape}, "request": {{"paths": {path}}}}}"#
                ));
            }
        }
        let callers = [
            "spiffe://td/a",
            "spiffe://td/b",
            "spiffe://td/x/y",
            "spiffe://td/z",
        ]
        .map(peer);
        let headers = http::HeaderMap::new();
        // Rotate which rules are deny rules and in what order the rest come.
        for split in 0..rules.len() {
            let (deny, allow) = rules.split_at(split);
            if allow.is_empty() {
                continue;
            }
            let mut allow = allow.to_vec();
            let turn = split % allow.len();
            allow.rotate_left(turn);
            let policy = Policy::from_json(&format!(
                r#"{{"name": "p", "deny_rules": [{}], "allow_rules": [{}]}}"#,
                deny.join(","),
                allow.join(",")
            ))
            .unwrap();
            for caller in callers.iter().map(Some).chain([None]) {
                for path in ["/s/M", "/s/N", "/t/M"] {
                    let request = Request {
                        path,
                        peer: caller,
                        headers: &headers,
                    };
                    let scan = if let Some(r) = policy.deny.iter().find(|r| r.matches(&request)) {
                        Decision::Deny { rule: &r.name }
                    } else if let Some(r) = policy.allow.iter().find(|r| r.matches(&request)) {
                        Decision::Allow { rule: &r.name }
                    } else {
                        Decision::DefaultDeny
                    };
                    assert_eq!(policy.evaluate(&request), scan, "{path} by {caller:?}");
                }
            }
        }
    }
}
