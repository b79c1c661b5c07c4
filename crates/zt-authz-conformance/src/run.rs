//! The decision comparison: seeded policies served by gRPC C++ and loaded by zt-authz, the
//! same requests sent to one and evaluated by the other, each disagreement minimised and
//! put in a category.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use http::HeaderMap;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use zt_authz::Policy;

use crate::generate;
use crate::grpc_side::{self, CppServer, Load, Verdict};
use crate::model::{PolicySpec, RequestSpec};
use crate::ours::{self, OurVerdict};
use crate::pki::{Identity, Pki};

/// How much to generate.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    pub(crate) seed: u64,
    pub(crate) policies: usize,
    pub(crate) callers_per_policy: usize,
    pub(crate) requests_per_caller: usize,
    /// At most this many disagreements are minimised per category (the rest are counted).
    pub(crate) shrink_per_category: usize,
    /// Time allowed for minimising, all disagreements together.
    pub(crate) shrink_time: Duration,
}

/// One disagreement, as found or minimised.
#[derive(Debug, Clone)]
pub(crate) struct Disagreement {
    pub(crate) policy: PolicySpec,
    pub(crate) identity: usize,
    pub(crate) request: RequestSpec,
    pub(crate) grpc: Verdict,
    pub(crate) ours: OurVerdict,
}

/// A policy one side loads and the other refuses, from the generated set.
#[derive(Debug, Clone)]
pub(crate) struct LoadMismatch {
    pub(crate) category: String,
    pub(crate) policy: String,
    pub(crate) detail: String,
}

/// The disagreements of one category.
#[derive(Debug, Default)]
pub(crate) struct Category {
    /// How many.
    pub(crate) count: usize,
    /// How many of them were categorised as found, without minimising.
    pub(crate) unminimised: usize,
    /// Distinct minimised examples.
    pub(crate) examples: Vec<Disagreement>,
}

/// The results of the decision comparison.
#[derive(Debug, Default)]
pub(crate) struct DecisionReport {
    pub(crate) policies: usize,
    pub(crate) both_loaded: usize,
    pub(crate) both_refused: usize,
    pub(crate) load_mismatches: Vec<LoadMismatch>,
    pub(crate) decisions: usize,
    pub(crate) agreements: usize,
    pub(crate) allowed_by_both: usize,
    pub(crate) errors: Vec<String>,
    /// Disagreements by category.
    pub(crate) categories: BTreeMap<String, Category>,
    pub(crate) shrink_evaluations: usize,
}

/// Runs the decision comparison.
pub(crate) async fn compare(
    server: &mut CppServer,
    pki: &Pki,
    identities: &[Identity],
    transport: &HeaderMap,
    budget: &Budget,
) -> anyhow::Result<DecisionReport> {
    let mut rng = StdRng::seed_from_u64(budget.seed);
    let mut report = DecisionReport::default();
    let mut found = Vec::new();
    for _ in 0..budget.policies {
        report.policies += 1;
        let (spec, targets) = generate::policy(&mut rng, identities);
        let json = spec.to_json();
        let ours = Policy::from_json(&json);
        let grpc = server.serve(&json).await?;
        let (policy, port) = match (ours, grpc) {
            (Ok(policy), Load::Accepted(port)) => (policy, port),
            (Err(_), Load::Refused(..)) => {
                report.both_refused += 1;
                continue;
            }
            (Err(e), Load::Accepted(_)) => {
                report.load_mismatches.push(LoadMismatch {
                    category: load_category(&spec, true),
                    policy: json,
                    detail: format!("ours refuses: {e}"),
                });
                continue;
            }
            (Ok(_), Load::Refused(_, message)) => {
                report.load_mismatches.push(LoadMismatch {
                    category: load_category(&spec, false),
                    policy: json,
                    detail: format!("gRPC refuses: {message}"),
                });
                continue;
            }
        };
        report.both_loaded += 1;

        let mut callers = targets;
        callers.sort_unstable();
        callers.dedup();
        callers.shuffle(&mut rng);
        callers.truncate(budget.callers_per_policy);
        while callers.len() < budget.callers_per_policy.min(identities.len()) {
            let extra = rng.random_range(0..identities.len());
            if !callers.contains(&extra) {
                callers.push(extra);
            }
        }
        let mut batch = Vec::new();
        for &caller in &callers {
            let channel = grpc_side::connect(port, &identities[caller], pki)?;
            for _ in 0..budget.requests_per_caller {
                batch.push((caller, channel.clone(), generate::request(&mut rng, &spec)));
            }
        }
        let verdicts = join_all(
            batch
                .iter()
                .map(|(_, channel, request)| grpc_side::call(channel.clone(), request)),
        )
        .await;
        for ((caller, _, request), grpc) in batch.into_iter().zip(verdicts) {
            report.decisions += 1;
            let ours = ours::decide(&policy, &identities[caller], &request, transport)?;
            if let Verdict::Error(e) = &grpc {
                report.errors.push(format!("{e} ({})", request.describe()));
                continue;
            }
            let grpc_allowed = matches!(grpc, Verdict::Allowed(_));
            if grpc_allowed == (ours == OurVerdict::Allowed) {
                report.agreements += 1;
                report.allowed_by_both += usize::from(grpc_allowed);
            } else {
                found.push(Disagreement {
                    policy: spec.clone(),
                    identity: caller,
                    request,
                    grpc,
                    ours,
                });
            }
        }
    }

    // Minimise: a few per category (by the category of the case as found), within the time
    // budget. A minimised case is counted under the category of its minimal form; the rest
    // under the category of the case as found (`unminimised` in the report).
    let started = Instant::now();
    let mut attempts: BTreeMap<String, usize> = BTreeMap::new();
    for case in found {
        let first_guess = categorize(&case, identities);
        let tried = attempts.entry(first_guess.clone()).or_default();
        if *tried >= budget.shrink_per_category * 10 || started.elapsed() > budget.shrink_time {
            let entry = report.categories.entry(first_guess).or_default();
            entry.count += 1;
            entry.unminimised += 1;
            continue;
        }
        *tried += 1;
        let minimal = shrink(server, pki, identities, transport, case, &mut report).await?;
        let entry = report
            .categories
            .entry(categorize(&minimal, identities))
            .or_default();
        entry.count += 1;
        let seen = entry.examples.iter().any(|e| {
            e.policy == minimal.policy
                && e.request == minimal.request
                && e.identity == minimal.identity
        });
        if !seen && entry.examples.len() < budget.shrink_per_category {
            entry.examples.push(minimal);
        }
    }
    Ok(report)
}

/// Evaluates one case on both sides; `Some` if they disagree (and both loaded the policy).
async fn disagreement(
    server: &mut CppServer,
    pki: &Pki,
    identities: &[Identity],
    transport: &HeaderMap,
    policy: &PolicySpec,
    identity: usize,
    request: &RequestSpec,
) -> anyhow::Result<Option<(Verdict, OurVerdict)>> {
    let json = policy.to_json();
    let Ok(ours_policy) = Policy::from_json(&json) else {
        return Ok(None);
    };
    let Load::Accepted(port) = server.serve(&json).await? else {
        return Ok(None);
    };
    let channel = grpc_side::connect(port, &identities[identity], pki)?;
    let grpc = grpc_side::call(channel, request).await;
    let ours = ours::decide(&ours_policy, &identities[identity], request, transport)?;
    Ok(match &grpc {
        Verdict::Error(_) => None,
        Verdict::Allowed(_) if ours != OurVerdict::Allowed => Some((grpc, ours)),
        Verdict::Denied if ours == OurVerdict::Allowed => Some((grpc, ours)),
        _ => None,
    })
}

/// Greedy minimisation: keep applying the first simplification that still disagrees.
async fn shrink(
    server: &mut CppServer,
    pki: &Pki,
    identities: &[Identity],
    transport: &HeaderMap,
    mut case: Disagreement,
    report: &mut DecisionReport,
) -> anyhow::Result<Disagreement> {
    'outer: loop {
        for (policy, request) in simplifications(&case.policy, &case.request) {
            report.shrink_evaluations += 1;
            if let Some((grpc, ours)) = disagreement(
                server,
                pki,
                identities,
                transport,
                &policy,
                case.identity,
                &request,
            )
            .await?
            {
                case = Disagreement {
                    policy,
                    request,
                    grpc,
                    ours,
                    identity: case.identity,
                };
                continue 'outer;
            }
        }
        return Ok(case);
    }
}

/// Every one-step-smaller variant of a case.
fn simplifications(policy: &PolicySpec, request: &RequestSpec) -> Vec<(PolicySpec, RequestSpec)> {
    let mut out = Vec::new();
    let mut push = |p: PolicySpec, r: RequestSpec| out.push((p, r));
    let same = request.clone();
    if let Some(deny) = &policy.deny {
        let mut p = policy.clone();
        p.deny = None;
        push(p, same.clone());
        for i in 0..deny.len() {
            let mut p = policy.clone();
            if let Some(d) = p.deny.as_mut() {
                d.remove(i);
            }
            push(p, same.clone());
        }
    }
    for i in 0..policy.allow.len() {
        if policy.allow.len() > 1 {
            let mut p = policy.clone();
            p.allow.remove(i);
            push(p, same.clone());
        }
    }
    if !policy.extra.is_empty() {
        let mut p = policy.clone();
        p.extra.clear();
        push(p, same.clone());
    }
    // Within each rule.
    let rule_count = policy.deny.as_ref().map_or(0, Vec::len) + policy.allow.len();
    for index in 0..rule_count {
        let edit = |f: &dyn Fn(&mut crate::model::RuleSpec) -> bool| -> Option<PolicySpec> {
            let mut p = policy.clone();
            let deny_len = p.deny.as_ref().map_or(0, Vec::len);
            let rule = if index < deny_len {
                p.deny.as_mut().and_then(|d| d.get_mut(index))
            } else {
                p.allow.get_mut(index - deny_len)
            }?;
            f(rule).then_some(p)
        };
        let mut variants: Vec<Option<PolicySpec>> = vec![
            edit(&|r| r.principals.take().is_some()),
            edit(&|r| r.paths.take().is_some()),
            edit(&|r| r.headers.take().is_some()),
            edit(&|r| r.source_extra.take().is_some()),
        ];
        for i in 0..4 {
            variants.push(edit(&|r| remove_at(r.principals.as_mut(), i)));
            variants.push(edit(&|r| remove_at(r.paths.as_mut(), i)));
            variants.push(edit(&|r| remove_at(r.headers.as_mut(), i)));
            for j in 0..3 {
                variants.push(edit(&|r| {
                    r.headers
                        .as_mut()
                        .and_then(|h| h.get_mut(i))
                        .is_some_and(|h| h.values.len() > 1 && remove_at(Some(&mut h.values), j))
                }));
            }
        }
        for p in variants.into_iter().flatten() {
            push(p, same.clone());
        }
    }
    for i in 0..request.metadata.len() {
        let mut r = request.clone();
        r.metadata.remove(i);
        push(policy.clone(), r);
    }
    out
}

fn remove_at<T>(list: Option<&mut Vec<T>>, index: usize) -> bool {
    match list {
        Some(list) if index < list.len() => {
            list.remove(index);
            true
        }
        _ => false,
    }
}

/// The deliberate differences the README lists, and the rest. Each test asks whether the
/// feature can explain this case (the values it sees differ between the two readings), from
/// the most specific down; a minimised case has little else left.
pub(crate) fn categorize(case: &Disagreement, identities: &[Identity]) -> String {
    let identity = &identities[case.identity];
    let Ok(peer) = &identity.ours else {
        return "unidentified-caller (not an X509-SVID: ours UNAUTHENTICATED)".into();
    };
    let request = &case.request;
    let sent = |key: &str| request.metadata.iter().filter(|(k, _)| k == key).count();
    let principals: Vec<&String> = case
        .policy
        .rules()
        .flat_map(|(_, r)| r.principals.iter().flatten())
        .collect();
    let headers: Vec<(bool, &crate::model::HeaderSpec)> = case
        .policy
        .rules()
        .flat_map(|(deny, r)| r.headers.iter().flatten().map(move |h| (deny, h)))
        .collect();
    let paths: Vec<&String> = case
        .policy
        .rules()
        .flat_map(|(_, r)| r.paths.iter().flatten())
        .collect();
    let grpc_values: Vec<&str> = identity
        .grpc
        .uris
        .iter()
        .chain(&identity.grpc.dns)
        .map(String::as_str)
        .chain([identity.grpc.subject.as_str()])
        .collect();

    let spiffe_differs = |p: &str| {
        let aware = match p.strip_suffix('*') {
            Some(prefix) => peer.spiffe_id().as_str().starts_with(prefix),
            None => peer.spiffe_id().as_str() == p,
        };
        aware != grpc_values.iter().any(|v| raw_match(p, v))
    };
    if principals
        .iter()
        .any(|p| p.starts_with("spiffe://") && spiffe_differs(p))
    {
        return "spiffe-principal (SPIFFE-aware matching)".into();
    }
    if headers.iter().any(|(_, h)| {
        h.key.chars().any(|c| c.is_ascii_uppercase()) && sent(&h.key.to_ascii_lowercase()) > 0
    }) {
        return "uppercase-header-key".into();
    }
    // gRPC C++ 1.51's HTTP server filter removes `content-type` before the authorization
    // filter runs: its engine never sees one.
    if headers.iter().any(|(_, h)| h.key == "content-type") {
        return "content-type (gRPC C++'s engine never sees it)".into();
    }
    if headers.iter().any(|(deny, h)| *deny && sent(&h.key) > 1) {
        return "deny-header-repeated (any single value)".into();
    }
    if headers
        .iter()
        .any(|(_, h)| h.key.ends_with("-bin") && sent(&h.key) > 0)
    {
        return "binary-header (-bin values)".into();
    }
    let readings_differ = |p: &str, values: &[&str]| {
        two_sided(p)
            && values
                .iter()
                .any(|v| raw_match(p, v) != prefix_first_match(p, v))
    };
    let header_values: Vec<String> = request
        .metadata
        .iter()
        .filter_map(|(_, v)| match v {
            crate::model::MdValue::Text(t) => Some(t.clone()),
            crate::model::MdValue::Binary(_) => None,
        })
        .collect();
    let mut joined: Vec<&str> = header_values.iter().map(String::as_str).collect();
    let joined_all: Vec<String> = headers
        .iter()
        .map(|(_, h)| {
            request
                .metadata
                .iter()
                .filter(|(k, _)| *k == h.key)
                .filter_map(|(_, v)| match v {
                    crate::model::MdValue::Text(t) => Some(t.as_str()),
                    crate::model::MdValue::Binary(_) => None,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    joined.extend(joined_all.iter().map(String::as_str));
    if principals.iter().any(|p| readings_differ(p, &grpc_values))
        || paths.iter().any(|p| readings_differ(p, &[&request.path]))
        || headers
            .iter()
            .any(|(_, h)| h.values.iter().any(|v| readings_differ(v, &joined)))
    {
        return "two-sided-pattern (*x*)".into();
    }
    if peer.subject() != identity.grpc.subject
        && principals
            .iter()
            .any(|p| raw_match(p, peer.subject()) != raw_match(p, &identity.grpc.subject))
    {
        return "subject-rendering".into();
    }
    "unexplained".into()
}

fn two_sided(pattern: &str) -> bool {
    pattern.len() >= 3 && pattern.starts_with('*') && pattern.ends_with('*')
}

/// The other reading of a pattern: trailing `*` first (`*x*` is a prefix `*x`).
fn prefix_first_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        !value.is_empty()
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else {
        value == pattern
    }
}

/// A43's raw string matching as gRPC C++ reads it (leading `*` first), for categorising.
fn raw_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        !value.is_empty()
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else {
        value == pattern
    }
}

/// Why one side refused a generated policy the other loaded, from the policy's features.
fn load_category(spec: &PolicySpec, ours_refused: bool) -> String {
    let who = if ours_refused {
        "ours refuses"
    } else {
        "gRPC refuses"
    };
    let rules: Vec<_> = spec.rules().map(|(_, r)| r).collect();
    let mut names: Vec<String> = Vec::new();
    let mut duplicate = false;
    for (deny, rule) in spec.rules() {
        let tagged = format!("{deny}:{}", rule.name);
        duplicate |= names.contains(&tagged);
        names.push(tagged);
    }
    let reason = if spec.extra.iter().any(|(k, _)| k != "audit_logging_options")
        || rules.iter().any(|r| r.source_extra.is_some())
    {
        "unknown field"
    } else if spec.name.is_empty() {
        "empty policy name"
    } else if spec.allow.is_empty() {
        "no allow rules"
    } else if rules.iter().any(|r| r.name.is_empty()) {
        "empty rule name"
    } else if duplicate {
        "duplicate rule name"
    } else if rules
        .iter()
        .flat_map(|r| r.headers.iter().flatten())
        .any(|h| {
            let lower = h.key.to_ascii_lowercase();
            h.key.is_empty() || lower.starts_with("grpc-") || lower == "host" || h.key.contains(' ')
        })
    {
        "header key (empty, GRPC-*, Host, invalid name)"
    } else if rules
        .iter()
        .flat_map(|r| r.principals.iter().flatten())
        .any(|p| p.starts_with("spiffe://"))
    {
        "spiffe:// pattern"
    } else if spec.extra.iter().any(|(k, _)| k == "audit_logging_options") {
        "audit_logging_options"
    } else {
        "other"
    };
    format!("{who}: {reason}")
}
