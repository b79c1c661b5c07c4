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
        Err(PolicyError::UnknownAuditLogger { name, .. }) if name == "cloud_logger"
    ));
    let optional = with(r#"{"name":"cloud_logger","is_optional":true}"#).unwrap();
    assert!(!optional.audit_to_stdout());
}

#[test]
fn malformed_policies_are_refused_with_the_json_path_and_reason() {
    let table = [
        (
            "not json",
            "invalid policy JSON: expected ident at line 1 column 2",
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"alow_rules":[]}"#,
            "alow_rules: unknown field (expected one of: name, deny_rules, allow_rules, audit_logging_options)",
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","sorce":{}}]}"#,
            "allow_rules[0].sorce: unknown field (expected one of: name, source, request)",
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"paths":["/a"],"header":[]}}]}"#,
            "allow_rules[0].request.header: unknown field (expected one of: paths, headers)",
        ),
        (
            r#"{"allow_rules":[{"name":"r"}]}"#,
            "name: missing or empty",
        ),
        (
            r#"{"name":"","allow_rules":[{"name":"r"}]}"#,
            "name: missing or empty",
        ),
        (r#"{"name":"p"}"#, "allow_rules: missing or empty"),
        (
            r#"{"name":"p","allow_rules":[]}"#,
            "allow_rules: missing or empty",
        ),
        (
            r#"{"name":"p","allow_rules":[{"source":{}}]}"#,
            "allow_rules[0].name: missing or empty",
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"},{"name":"r"}]}"#,
            r#"allow_rules[1].name: "r" is already the name of allow_rules[0]"#,
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":":path","values":["x"]}]}}]}"#,
            r#"allow_rules[0].request.headers[0].key: ":path": pseudo, hop-by-hop, host and grpc-* headers cannot be matched"#,
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":"grpc-timeout","values":["x"]}]}}]}"#,
            r#"allow_rules[0].request.headers[0].key: "grpc-timeout": pseudo, hop-by-hop, host and grpc-* headers cannot be matched"#,
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":"Host","values":["x"]}]}}]}"#,
            r#"allow_rules[0].request.headers[0].key: "Host": pseudo, hop-by-hop, host and grpc-* headers cannot be matched"#,
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"key":"x","values":[]}]}}]}"#,
            "allow_rules[0].request.headers[0].values: missing or empty",
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r","request":{"headers":[{"values":["v"]}]}}]}"#,
            "allow_rules[0].request.headers[0].key: missing or empty",
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_condition":"SOMETIMES"}}"#,
            r#"audit_logging_options.audit_condition: unknown value "SOMETIMES" (expected one of: NONE, ON_DENY, ON_ALLOW, ON_DENY_AND_ALLOW)"#,
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_loggers":[{"name":"syslog"}]}}"#,
            r#"audit_logging_options.audit_loggers[0]: audit logger "syslog" is not supported (only "stdout_logger"); mark it "is_optional" to skip it"#,
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_loggers":[{"name":"stdout_logger","config":{"level":"debug"}}]}}"#,
            r#"audit_logging_options.audit_loggers[0]: "stdout_logger" takes no configuration; write "config": {}"#,
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_loggers":[{"stdout_logger":{},"other":{}}]}}"#,
            r#"audit_logging_options.audit_loggers[0]: expected {"name": ..., "config": {...}, "is_optional": ...} or {"<logger name>": {...}}, found an object with other keys"#,
        ),
    ];
    for (json, want) in table {
        let err = Policy::from_json(json).unwrap_err();
        assert_eq!(err.to_string(), want, "{json}");
    }
}

/// The reports that found the fail-open readings: each was a policy that allowed every caller.
#[test]
fn malformed_rules_fail_closed_instead_of_matching_everyone() {
    let table = [
        // An array where a rule belongs was read as a rule named "a" with nothing else.
        (
            r#"{"name":"p","allow_rules":[["a"]]}"#,
            "allow_rules[0]: expected an object, found an array",
        ),
        // `null` was read as an absent source, which matches any caller.
        (
            r#"{"name":"a","allow_rules":[{"name":"r","source":null,"request":{"paths":["/a.B/C"]}}]}"#,
            "allow_rules[0].source: expected an object, found null",
        ),
        (
            r#"{"name":"a","allow_rules":[{"name":"r","source":{"principals":null}}]}"#,
            "allow_rules[0].source.principals: expected an array, found null",
        ),
        (
            r#"{"name":"a","allow_rules":[{"name":"r","request":{"paths":null}}]}"#,
            "allow_rules[0].request.paths: expected an array, found null",
        ),
        (
            r#"{"name":"a","allow_rules":[{"name":"r","request":{"headers":null}}]}"#,
            "allow_rules[0].request.headers: expected an array, found null",
        ),
        (
            r#"{"name":"a","deny_rules":null,"allow_rules":[{"name":"r"}]}"#,
            "deny_rules: expected an array, found null",
        ),
        // A later key would silently replace an earlier, narrower one.
        (
            r#"{"name":"a","allow_rules":[{"name":"r","source":{"principals":["spiffe://td/a"]},"source":{}}]}"#,
            "allow_rules[0].source: written twice in one object",
        ),
        // grpc-go and gRPC C++ refuse a logger config that is not an object.
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_loggers":[{"name":"stdout_logger","config":"abc"}]}}"#,
            "audit_logging_options.audit_loggers[0].config: expected an object, found a string",
        ),
        (
            r#"{"name":"p","allow_rules":[{"name":"r"}],"audit_logging_options":{"audit_loggers":[{"name":"x","config":123,"is_optional":true}]}}"#,
            "audit_logging_options.audit_loggers[0].config: expected an object, found a number",
        ),
    ];
    for (json, want) in table {
        let err = Policy::from_json(json).unwrap_err();
        assert_eq!(err.to_string(), want, "{json}");
    }
}

/// Every field of the schema, given every JSON type it must not have, is refused with its
/// path and both types. The template uses every field, so a field this table misses shows
/// up as an unrefused substitution.
#[test]
fn every_field_refuses_every_wrong_json_type() {
    use serde_json::{Value, json};

    let rule = |name: &str| {
        json!({"name": name,
               "source": {"principals": ["spiffe://td/a"]},
               "request": {"paths": ["/a.B/C"],
                           "headers": [{"key": "x-h", "values": ["v"]}]}})
    };
    let template = json!({
        "name": "p",
        "deny_rules": [rule("d")],
        "allow_rules": [rule("a")],
        "audit_logging_options": {
            "audit_condition": "ON_DENY",
            "audit_loggers": [
                {"name": "stdout_logger", "config": {}, "is_optional": false},
                {"stdout_logger": {}}
            ]
        }
    });
    Policy::from_json(&template.to_string()).expect("the template itself is valid");

    let mut fields: Vec<(String, &str)> = [
        ("/name", "a string"),
        ("/audit_logging_options", "an object"),
        ("/audit_logging_options/audit_condition", "a string"),
        ("/audit_logging_options/audit_loggers", "an array"),
        ("/audit_logging_options/audit_loggers/0", "an object"),
        ("/audit_logging_options/audit_loggers/0/name", "a string"),
        ("/audit_logging_options/audit_loggers/0/config", "an object"),
        (
            "/audit_logging_options/audit_loggers/0/is_optional",
            "a boolean",
        ),
        ("/audit_logging_options/audit_loggers/1", "an object"),
        (
            "/audit_logging_options/audit_loggers/1/stdout_logger",
            "an object",
        ),
    ]
    .map(|(pointer, expected)| (pointer.to_owned(), expected))
    .into();
    for list in ["/deny_rules", "/allow_rules"] {
        for (suffix, expected) in [
            ("", "an array"),
            ("/0", "an object"),
            ("/0/name", "a string"),
            ("/0/source", "an object"),
            ("/0/source/principals", "an array"),
            ("/0/source/principals/0", "a string"),
            ("/0/request", "an object"),
            ("/0/request/paths", "an array"),
            ("/0/request/paths/0", "a string"),
            ("/0/request/headers", "an array"),
            ("/0/request/headers/0", "an object"),
            ("/0/request/headers/0/key", "a string"),
            ("/0/request/headers/0/values", "an array"),
            ("/0/request/headers/0/values/0", "a string"),
        ] {
            fields.push((format!("{list}{suffix}"), expected));
        }
    }
    let samples = [
        (Value::Null, "null"),
        (json!(["x"]), "an array"),
        (json!({"x": 1}), "an object"),
        (json!("x"), "a string"),
        (json!(7), "a number"),
        (json!(true), "a boolean"),
    ];
    let mut refused = 0;
    for (pointer, expected) in fields {
        // The JSON pointer as our messages write the path: `allow_rules[0].source`.
        let path = pointer
            .trim_start_matches('/')
            .split('/')
            .fold(String::new(), |path, part| match part.parse::<usize>() {
                Ok(index) => format!("{path}[{index}]"),
                Err(_) if path.is_empty() => part.to_owned(),
                Err(_) => format!("{path}.{part}"),
            });
        for (sample, found) in &samples {
            if *found == expected {
                continue;
            }
            let mut doc = template.clone();
            *doc.pointer_mut(&pointer).expect(&pointer) = sample.clone();
            let err = Policy::from_json(&doc.to_string()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{path}: expected {expected}, found {found}"),
                "{pointer} = {sample}"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, (10 + 2 * 14) * 5);
}

/// Deny rules fail closed on a repeated header; allow rules keep A43's joined reading.
#[test]
fn a_repeated_header_cannot_dodge_a_deny_rule() {
    let policy = Policy::from_json(
        r#"{"name":"p",
            "deny_rules":[{"name":"no-admins","request":{"headers":[{"key":"x-role","values":["admin"]}]}}],
            "allow_rules":[{"name":"role-user","request":{"headers":[{"key":"x-role","values":["user"]}]}}]}"#,
    )
    .unwrap();
    let who = peer("spiffe://td/a", &[], "a");
    let headers = |values: &[&'static str]| {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-role", HeaderValue::from_static(v));
        }
        map
    };
    let denied = Decision::Deny { rule: "no-admins" };
    let table = [
        (&["admin"][..], denied),
        (&["user"][..], Decision::Allow { rule: "role-user" }),
        // Joined, these read "user,admin" and "admin,admin": A43 alone would miss both.
        (&["user", "admin"][..], denied),
        (&["admin", "admin"][..], denied),
        (&["admin", "user"][..], denied),
        // Allow rules match the joined value only: "user,user" is not "user".
        (&["user", "user"][..], Decision::DefaultDeny),
    ];
    for (values, want) in table {
        assert_eq!(
            decide(&policy, Some(&who), "/a.B/C", &headers(values)),
            want,
            "{values:?}"
        );
    }
}

/// `-bin` metadata is matched on the decoded bytes, as gRPC does.
#[test]
fn binary_headers_match_their_decoded_bytes() {
    let policy = Policy::from_json(
        r#"{"name":"p",
            "deny_rules":[{"name":"no-root","request":{"headers":[{"key":"x-who-bin","values":["root"]}]}}],
            "allow_rules":[{"name":"tokens","request":{"headers":[{"key":"x-token-bin","values":["hello"]}]}}]}"#,
    )
    .unwrap();
    let who = peer("spiffe://td/a", &[], "a");
    let decision = |pairs: &[(&'static str, &'static str)]| {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        decide(&policy, Some(&who), "/a.B/C", &map)
    };
    let allowed = Decision::Allow { rule: "tokens" };
    let denied = Decision::Deny { rule: "no-root" };
    // "hello" is aGVsbG8= in base64; gRPC accepts it with or without padding.
    assert_eq!(decision(&[("x-token-bin", "aGVsbG8=")]), allowed);
    assert_eq!(decision(&[("x-token-bin", "aGVsbG8")]), allowed);
    // The text itself is not the value, and text that is not base64 matches no allow rule.
    assert_eq!(decision(&[("x-token-bin", "hello")]), Decision::DefaultDeny);
    // "root" is cm9vdA==; a deny rule also fails closed on a value it cannot decode.
    let token = ("x-token-bin", "aGVsbG8=");
    assert_eq!(decision(&[token, ("x-who-bin", "cm9vdA==")]), denied);
    assert_eq!(decision(&[token, ("x-who-bin", "not base64!")]), denied);
    assert_eq!(decision(&[token, ("x-who-bin", "dXNlcg==")]), allowed); // "user"
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
