//! gRFC A43 semantics and the SPIFFE-aware extension, as tables. No sockets: identities come
//! from certificates made here, read by the same code the server uses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed assertion"
)]

use http::{HeaderMap, HeaderValue};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
};
use zt_authz::{AuditCondition, Decision, Policy, PolicyError, Request};
use zt_identity::{PeerIdentity, TrustDomain, TrustedDomains};

fn peer(uri: &str, dns: &[&str], cn: &str) -> PeerIdentity {
    let mut params = CertificateParams::default();
    params.subject_alt_names = std::iter::once(SanType::URI(uri.try_into().unwrap()))
        .chain(
            dns.iter()
                .map(|d| SanType::DnsName((*d).try_into().unwrap())),
        )
        .collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let der = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    let domain = uri
        .trim_start_matches("spiffe://")
        .split('/')
        .next()
        .unwrap();
    TrustedDomains::new([TrustDomain::new(domain).unwrap()])
        .identify(Some(der.der()))
        .unwrap()
}

fn decide<'p>(
    policy: &'p Policy,
    peer: Option<&PeerIdentity>,
    path: &str,
    headers: &HeaderMap,
) -> Decision<'p> {
    policy.evaluate(&Request {
        path,
        peer,
        headers,
    })
}

const LEDGER: &str = r#"{
  "name": "ledger",
  "deny_rules": [
    {"name": "nobody-touches-admin", "request": {"paths": ["/ledger.v1.Admin/*"]}}
  ],
  "allow_rules": [
    {"name": "payments-all",
     "source": {"principals": ["spiffe://zt.example/ns/prod/sa/payments"]},
     "request": {"paths": ["/ledger.v1.Ledger/*", "/ledger.v1.Admin/*"]}},
    {"name": "auditor-read",
     "source": {"principals": ["spiffe://zt.example/ns/prod/sa/auditor"]},
     "request": {"paths": ["/ledger.v1.Ledger/GetBalance", "/ledger.v1.Ledger/ListTransfers"]}}
  ]
}"#;

#[test]
fn deny_beats_allow_then_allow_then_default_deny() {
    let policy = Policy::from_json(LEDGER).unwrap();
    let payments = peer("spiffe://zt.example/ns/prod/sa/payments", &[], "payments");
    let auditor = peer("spiffe://zt.example/ns/prod/sa/auditor", &[], "auditor");
    let stranger = peer("spiffe://zt.example/ns/prod/sa/stranger", &[], "stranger");
    let h = HeaderMap::new();

    let table = [
        (
            &payments,
            "/ledger.v1.Ledger/Transfer",
            Decision::Allow {
                rule: "payments-all",
            },
        ),
        (
            &payments,
            "/ledger.v1.Admin/Drop",
            Decision::Deny {
                rule: "nobody-touches-admin",
            },
        ),
        (
            &auditor,
            "/ledger.v1.Ledger/GetBalance",
            Decision::Allow {
                rule: "auditor-read",
            },
        ),
        (
            &auditor,
            "/ledger.v1.Ledger/ListTransfers",
            Decision::Allow {
                rule: "auditor-read",
            },
        ),
        (
            &auditor,
            "/ledger.v1.Ledger/Transfer",
            Decision::DefaultDeny,
        ),
        (
            &stranger,
            "/ledger.v1.Ledger/GetBalance",
            Decision::DefaultDeny,
        ),
    ];
    for (who, path, want) in table {
        assert_eq!(
            decide(&policy, Some(who), path, &h),
            want,
            "{} {path}",
            who.spiffe_id()
        );
    }
    assert_eq!(
        decide(&policy, None, "/ledger.v1.Ledger/GetBalance", &h),
        Decision::DefaultDeny
    );
}

#[test]
fn raw_patterns_match_uri_then_dns_then_subject() {
    let who = peer(
        "spiffe://zt.example/ns/prod/sa/web",
        &["web.internal"],
        "web-frontend",
    );
    let h = HeaderMap::new();
    let table = [
        ("spiffe://zt.example/ns/prod/sa/web", true), // exact on the URI SAN
        ("*.internal", true),                         // suffix on a DNS SAN
        ("web.int*", true),                           // prefix on a DNS SAN
        ("CN=web-frontend", true),                    // exact on the subject
        ("*", true),                                  // any authenticated principal
        ("web", false),
        ("", false),
    ];
    for (pattern, want) in table {
        let json = format!(
            r#"{{"name":"p","allow_rules":[{{"name":"r","source":{{"principals":["{pattern}"]}}}}]}}"#
        );
        let policy = Policy::from_json(&json).unwrap();
        assert_eq!(
            decide(&policy, Some(&who), "/a.B/C", &h).is_allowed(),
            want,
            "pattern {pattern:?}"
        );
    }
}

#[test]
fn no_certificate_only_matches_the_empty_principal_or_an_empty_source() {
    let h = HeaderMap::new();
    let empty_principal = Policy::from_json(
        r#"{"name":"p","allow_rules":[{"name":"anon","source":{"principals":[""]}}]}"#,
    )
    .unwrap();
    assert!(decide(&empty_principal, None, "/a.B/C", &h).is_allowed());

    let star = Policy::from_json(
        r#"{"name":"p","allow_rules":[{"name":"any-authn","source":{"principals":["*"]}}]}"#,
    )
    .unwrap();
    assert_eq!(decide(&star, None, "/a.B/C", &h), Decision::DefaultDeny);

    // A43: an empty rule matches everything, unauthenticated callers included.
    let empty_rule = Policy::from_json(r#"{"name":"p","allow_rules":[{"name":"all"}]}"#).unwrap();
    assert_eq!(
        decide(&empty_rule, None, "/a.B/C", &h),
        Decision::Allow { rule: "all" }
    );
}

#[test]
fn path_patterns() {
    let policy = Policy::from_json(
        r#"{"name":"p","allow_rules":[{"name":"r","request":{"paths":
            ["/pkg.Svc/Exact", "/pkg.Pre/*", "*/Suffix"]}}]}"#,
    )
    .unwrap();
    let who = peer("spiffe://td/a", &[], "a");
    let h = HeaderMap::new();
    for (path, want) in [
        ("/pkg.Svc/Exact", true),
        ("/pkg.Svc/Exactly", false),
        ("/pkg.Pre/Anything", true),
        ("/pkg.Other/Suffix", true),
        ("/pkg.Other/Nope", false),
    ] {
        assert_eq!(
            decide(&policy, Some(&who), path, &h).is_allowed(),
            want,
            "{path}"
        );
    }
}

#[test]
fn headers_and_across_entries_or_across_values_joined_when_repeated() {
    let policy = Policy::from_json(
        r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[
            {"key":"X-Env","values":["prod","stag*"]},
            {"key":"x-team","values":["*"]}]}}]}"#,
    )
    .unwrap();
    let who = peer("spiffe://td/a", &[], "a");
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    };
    let table = [
        (headers(&[("x-env", "prod"), ("x-team", "pay")]), true),
        (headers(&[("x-env", "staging"), ("x-team", "pay")]), true),
        (headers(&[("x-env", "prod")]), false), // second entry missing
        (headers(&[("x-env", "dev"), ("x-team", "pay")]), false), // no value matches
        (
            headers(&[("x-env", "prod"), ("x-env", "dev"), ("x-team", "t")]),
            false,
        ), // "prod,dev"
        (
            headers(&[("x-env", "stag"), ("x-env", "dev"), ("x-team", "t")]),
            true,
        ), // "stag,dev"
        (headers(&[("x-env", "prod"), ("x-team", "")]), false), // '*' needs a value
    ];
    for (i, (map, want)) in table.into_iter().enumerate() {
        assert_eq!(
            decide(&policy, Some(&who), "/a.B/C", &map).is_allowed(),
            want,
            "case {i}"
        );
    }
}

#[test]
fn spiffe_patterns_are_segment_and_domain_aware() {
    let policy = Policy::from_json(
        r#"{"name":"p","allow_rules":[{"name":"prod","source":{"principals":["spiffe://td/ns/prod/*"]}}]}"#,
    )
    .unwrap();
    let h = HeaderMap::new();
    let table = [
        (peer("spiffe://td/ns/prod/sa/x", &[], "x"), true),
        (peer("spiffe://td.evil/ns/prod/sa/x", &[], "x"), false),
        (peer("spiffe://td/ns/production/sa/x", &[], "x"), false),
        (peer("spiffe://td/ns/prod", &[], "x"), false),
        // A DNS SAN or subject spelling the ID never satisfies a SPIFFE pattern.
        (
            peer(
                "spiffe://other/x",
                &["spiffe.td.ns.prod"],
                "spiffe://td/ns/prod/sa/x",
            ),
            false,
        ),
    ];
    for (who, want) in table {
        assert_eq!(
            decide(&policy, Some(&who), "/a.B/C", &h).is_allowed(),
            want,
            "{}",
            who.spiffe_id()
        );
    }
    // A raw A43 prefix would have crossed the trust-domain boundary: refuse to load it.
    let err = Policy::from_json(
        r#"{"name":"p","allow_rules":[{"name":"r","source":{"principals":["spiffe://td*"]}}]}"#,
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::SpiffePattern { .. }), "{err}");
}

#[test]
fn grpc_go_policy_with_audit_options_loads_unchanged() {
    // Shaped like the policies in grpc-go's authz tests and docs.
    let policy = Policy::from_json(
        r#"{
          "name": "authz",
          "deny_rules": [{"name": "deny_foo", "source": {"principals": ["spiffe://foo.abc"]},
                          "request": {"paths": ["/pkg.Svc/Foo"]}}],
          "allow_rules": [{"name": "allow_all", "source": {"principals": []},
                           "request": {"paths": ["*"], "headers": [{"key": "key-abc", "values": ["val-abc"]}]}}],
          "audit_logging_options": {
            "audit_condition": "ON_DENY_AND_ALLOW",
            "audit_loggers": [{"name": "stdout_logger", "config": {}, "is_optional": false},
                              {"name": "custom_logger", "config": {"k": 1}, "is_optional": true}]
          }
        }"#,
    );
    // "spiffe://foo.abc" has no path: it names a trust domain, not a workload, so our
    // SPIFFE-aware reading refuses it rather than guessing.
    assert!(matches!(policy, Err(PolicyError::SpiffePattern { .. })));

    let policy = Policy::from_json(
        r#"{
          "name": "authz",
          "deny_rules": [{"name": "deny_foo", "source": {"principals": ["spiffe://foo.abc/bar"]}}],
          "allow_rules": [{"name": "allow_all"}],
          "audit_logging_options": {
            "audit_condition": "ON_DENY_AND_ALLOW",
            "audit_loggers": [{"name": "stdout_logger", "config": {}, "is_optional": false}]
          }
        }"#,
    )
    .unwrap();
    assert_eq!(policy.name(), "authz");
    assert_eq!(policy.audit_condition(), AuditCondition::OnDenyAndAllow);
    assert!(policy.audit_to_stdout());
    assert_eq!(
        policy.rule_names().collect::<Vec<_>>(),
        ["deny_foo", "allow_all"]
    );
}

#[test]
fn audit_conditions() {
    use AuditCondition::*;
    for (cond, on_allow, on_deny) in [
        (None, false, false),
        (OnDeny, false, true),
        (OnAllow, true, false),
        (OnDenyAndAllow, true, true),
    ] {
        assert_eq!(
            (cond.audits(true), cond.audits(false)),
            (on_allow, on_deny),
            "{cond:?}"
        );
    }
}

#[test]
fn audit_loggers_in_either_spelling() {
    let with = |loggers: &str| {
        Policy::from_json(&format!(
            r#"{{"name":"p","allow_rules":[{{"name":"r"}}],
                "audit_logging_options":{{"audit_condition":"ON_DENY","audit_loggers":[{loggers}]}}}}"#
        ))
    };
    let grpc_go = with(r#"{"name":"stdout_logger","config":{},"is_optional":false}"#).unwrap();
    assert!(grpc_go.audit_to_stdout());
    assert_eq!(grpc_go.audit_condition(), AuditCondition::OnDeny);
    assert!(with(r#"{"stdout_logger":{}}"#).unwrap().audit_to_stdout());
    // An unknown logger is an error unless marked optional (A59).
    assert!(matches!(
        with(r#"{"cloud_logger":{}}"#),
        Err(PolicyError::UnknownAuditLogger(name)) if name == "cloud_logger"
    ));
    let optional = with(r#"{"name":"cloud_logger","is_optional":true}"#).unwrap();
    assert!(!optional.audit_to_stdout());
}

#[test]
fn malformed_policies_are_refused_with_the_reason() {
    type Check = fn(&PolicyError) -> bool;
    let table: &[(&str, Check)] = &[
        ("not json", |e| matches!(e, PolicyError::Json(_))),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"alow_rules":[]}"#,
            |e| matches!(e, PolicyError::Json(_)),
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","sorce":{}}]}"#,
            |e| matches!(e, PolicyError::Json(_)),
        ),
        (r#"{"allow_rules":[{"name":"r"}]}"#, |e| {
            matches!(e, PolicyError::MissingName)
        }),
        (r#"{"name":"p"}"#, |e| {
            matches!(e, PolicyError::NoAllowRules)
        }),
        (r#"{"name":"p","allow_rules":[]}"#, |e| {
            matches!(e, PolicyError::NoAllowRules)
        }),
        (r#"{"name":"p","allow_rules":[{"source":{}}]}"#, |e| {
            matches!(e, PolicyError::UnnamedRule { index: 0, .. })
        }),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"},{"name":"r"}]}"#,
            |e| matches!(e, PolicyError::DuplicateRule { .. }),
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":":path","values":["x"]}]}}]}"#,
            |e| matches!(e, PolicyError::Header { .. }),
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":"grpc-timeout","values":["x"]}]}}]}"#,
            |e| matches!(e, PolicyError::Header { .. }),
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":"Host","values":["x"]}]}}]}"#,
            |e| matches!(e, PolicyError::Header { .. }),
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":"x","values":[]}]}}]}"#,
            |e| matches!(e, PolicyError::Header { .. }),
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_condition":"SOMETIMES"}}"#,
            |e| matches!(e, PolicyError::Json(_)),
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_loggers":[{"name":"syslog"}]}}"#,
            |e| matches!(e, PolicyError::UnknownAuditLogger(_)),
        ),
    ];
    for (json, check) in table {
        let err = Policy::from_json(json).unwrap_err();
        assert!(check(&err), "{json} gave {err}");
    }
}

/// `explain` (behind `ledger policy explain`): the deciding rule, and every rule that matched.
#[test]
fn explain_names_the_deciding_rule_and_every_match() {
    let policy = Policy::from_json(
        r#"{"name": "p",
            "deny_rules": [{"name": "no-moves",
                "source": {"principals": ["spiffe://td/sa/auditor"]},
                "request": {"paths": ["/bank.v1.Bank/Move"]}}],
            "allow_rules": [
                {"name": "everyone", "source": {"principals": ["spiffe://td/*"]},
                 "request": {"paths": ["/bank.v1.Bank/*"]}},
                {"name": "auditor", "source": {"principals": ["spiffe://td/sa/auditor"]},
                 "request": {"paths": ["/bank.v1.Bank/*"]}}]}"#,
    )
    .unwrap();
    let auditor = peer("spiffe://td/sa/auditor", &[], "auditor");
    let headers = HeaderMap::new();
    let ask = |path| {
        policy.explain(&Request {
            path,
            peer: Some(&auditor),
            headers: &headers,
        })
    };
    let moved = ask("/bank.v1.Bank/Move");
    assert_eq!(moved.decision, Decision::Deny { rule: "no-moves" });
    assert_eq!(moved.matching_deny, ["no-moves"]);
    assert_eq!(moved.matching_allow, ["everyone", "auditor"]);
    let read = ask("/bank.v1.Bank/Get");
    assert_eq!(read.decision, Decision::Allow { rule: "everyone" });
    assert!(read.matching_deny.is_empty());
    assert_eq!(ask("/other.v1.Other/X").decision, Decision::DefaultDeny);
}
