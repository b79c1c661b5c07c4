//! The seeded generator: caller certificates, policies aimed at them, and requests aimed at
//! the policies. Everything comes from one `StdRng` seed, so a run is reproducible.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};
use serde_json::json;

use crate::model::{HeaderSpec, MdValue, PolicySpec, RequestSpec, RuleSpec};
use crate::pki::{CertSpec, Identity};

const SPIFFE_IDS: &[&str] = &[
    "spiffe://zt.example/ns/prod/sa/payments",
    "spiffe://zt.example/ns/prod/sa/auditor",
    "spiffe://zt.example/ns/prod/sa/pay",
    "spiffe://zt.example/ns/prod/sa/payments/v2",
    "spiffe://zt.example/ns/dev/sa/payments",
    "spiffe://zt.example.evil/ns/prod/sa/payments",
    "spiffe://other.org/payments",
];
const DNS_NAMES: &[&str] = &[
    "payments",
    "payments.prod.svc",
    "auditor.zt.example",
    "localhost",
    "*.zt.example",
];
const ATTRS: &[&str] = &[
    "C",
    "ST",
    "L",
    "O",
    "OU",
    "CN",
    "DC",
    "emailAddress",
    "serialNumber",
];
const VALUES: &[&str] = &[
    "payments",
    "zt-grpc",
    "Acme, Inc.",
    "Zoë Müller",
    "a+b",
    "x=y",
    "#hash",
    " lead",
    "trail ",
    "quote\"d",
    "back\\slash",
    "semi;colon",
    "<angle>",
    "日本",
    "ops",
    "CN=inner",
];
/// Methods requests call (and exact path patterns name).
const PATHS: &[&str] = &[
    "/ledger.v1.Ledger/Transfer",
    "/ledger.v1.Ledger/GetBalance",
    "/ledger.v1.Ledger/ListTransfers",
    "/grpc.health.v1.Health/Check",
    "/other.v1.Svc/Transfer",
    "/ledger.v1.Ledger/Get*",
    "/ledger.v1.Ledger*/x",
];
const PATH_PATTERNS: &[&str] = &[
    "/ledger.v1.Ledger/*",
    "*Transfer",
    "*",
    "*Ledger*",
    "*Get*",
    "/grpc.health.v1.Health/*",
    "/ledger.v1.Ledger/Get",
    "",
];
/// Metadata keys requests send (text values).
const TEXT_KEYS: &[&str] = &["x-role", "x-tenant", "authorization", "x-empty"];
const TEXT_VALUES: &[&str] = &[
    "admin",
    "reader",
    "admin,reader",
    "",
    "*admin",
    "admin*",
    "*admin*",
    "t1",
    "Bearer t0k3n",
    "application/grpc",
];
const BIN_KEY: &str = "x-data-bin";
/// Header keys policies name besides the ones requests send.
const POLICY_ONLY_KEYS: &[&str] = &[
    "X-Role",
    "content-type",
    "user-agent",
    "X-Data-Bin",
    "te",
    "grpc-foo",
    "GRPC-Foo",
    ":path",
    "Host",
    "",
    "x bad",
];
const HEADER_PATTERNS: &[&str] = &[
    "*",
    "admin*",
    "*admin",
    "*admin*",
    "reader",
    "",
    "application/grpc",
    "application/grpc*",
    "*grpc",
    "tonic*",
    "YWRtaW4",
    "YWRt*",
];

/// Caller certificate specifications: mostly X509-SVIDs; about one in eight is not (no URI
/// SAN, two, or another scheme), which gRPC accepts and the ledger refuses to identify.
pub(crate) fn cert_specs(rng: &mut StdRng, count: usize) -> Vec<CertSpec> {
    (0..count)
        .map(|i| {
            let rdn_count = match i % 6 {
                0 => 0,
                1 => 1,
                _ => rng.random_range(2..=4),
            };
            let rdns = (0..rdn_count)
                .map(|_| {
                    let attrs = if rng.random_bool(0.25) { 2 } else { 1 };
                    (0..attrs).map(|_| attribute(rng)).collect()
                })
                .collect();
            let uris = match rng.random_range(0..24) {
                0 => vec![],
                1 => vec![pick(rng, SPIFFE_IDS), pick(rng, SPIFFE_IDS)],
                2 => vec!["https://zt.example/payments".to_owned()],
                _ => vec![pick(rng, SPIFFE_IDS)],
            };
            let dns = (0..rng.random_range(0..=2))
                .map(|_| pick(rng, DNS_NAMES))
                .collect();
            CertSpec { rdns, uris, dns }
        })
        .collect()
}

fn attribute(rng: &mut StdRng) -> (String, String) {
    let attr = pick(rng, ATTRS);
    let value = match attr.as_str() {
        "C" => pick(rng, &["DE", "US"]),
        "emailAddress" => pick(rng, &["ops@zt.example", "a.b@x.org"]),
        "DC" => pick(rng, &["zt", "example"]),
        "serialNumber" => pick(rng, &["A1234", "42"]),
        _ => pick(rng, VALUES),
    };
    (attr, value)
}

fn pick(rng: &mut StdRng, from: &[&str]) -> String {
    from.choose(rng).copied().unwrap_or_default().to_owned()
}

/// A policy aimed at some of `identities`, and the indexes of the identities it names.
pub(crate) fn policy(rng: &mut StdRng, identities: &[Identity]) -> (PolicySpec, Vec<usize>) {
    let mut targets = Vec::new();
    let mut rule = |rng: &mut StdRng, index: usize| -> RuleSpec {
        let principals = rng.random_bool(0.7).then(|| {
            (0..rng.random_range(0..=3))
                .map(|_| {
                    let target = rng.random_range(0..identities.len());
                    targets.push(target);
                    principal(rng, &identities[target])
                })
                .collect()
        });
        let paths = rng.random_bool(0.6).then(|| {
            (0..rng.random_range(0..=2))
                .map(|_| {
                    if rng.random_bool(0.5) {
                        pick(rng, PATHS)
                    } else {
                        pick(rng, PATH_PATTERNS)
                    }
                })
                .collect()
        });
        let headers = rng
            .random_bool(0.4)
            .then(|| (0..rng.random_range(1..=2)).map(|_| header(rng)).collect());
        let name = match rng.random_range(0..80) {
            0 => String::new(),
            1 => "r0".into(),
            _ => format!("r{index}"),
        };
        let source_extra = (rng.random_range(0..100) == 0)
            .then(|| ("principal".to_owned(), json!(["spiffe://zt.example/*"])));
        RuleSpec {
            name,
            principals,
            paths,
            headers,
            source_extra,
        }
    };
    let deny_count = rng.random_range(0..=2);
    let deny = (deny_count > 0 || rng.random_bool(0.2))
        .then(|| (0..deny_count).map(|i| rule(rng, i)).collect());
    let allow_count = if rng.random_range(0..30) == 0 {
        0
    } else {
        rng.random_range(1..=3)
    };
    let allow = (0..allow_count).map(|i| rule(rng, 10 + i)).collect();
    let mut extra = Vec::new();
    if rng.random_range(0..20) == 0 {
        extra.push((
            "audit_logging_options".to_owned(),
            json!({"audit_condition": "ON_DENY", "audit_loggers": [{"name": "stdout_logger"}]}),
        ));
    }
    if rng.random_range(0..60) == 0 {
        extra.push(("allow_rule".to_owned(), json!([])));
    }
    let name = if rng.random_range(0..30) == 0 {
        String::new()
    } else {
        "conformance".to_owned()
    };
    let policy = PolicySpec {
        name,
        deny,
        allow,
        extra,
    };
    (policy, targets)
}

/// A principal pattern derived from what `identity` presents, in one of A43's forms.
fn principal(rng: &mut StdRng, identity: &Identity) -> String {
    let spiffe = identity.spec.uris.first().cloned().unwrap_or_default();
    let dns = identity.spec.dns.first().cloned().unwrap_or_default();
    let grpc_subject = identity.grpc.subject.clone();
    let our_subject = identity
        .ours
        .as_ref()
        .map(|p| p.subject().to_owned())
        .unwrap_or_default();
    let cut = |s: &str, rng: &mut StdRng| -> usize {
        let boundaries: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
        boundaries.choose(rng).copied().unwrap_or(0)
    };
    match rng.random_range(0..17) {
        0 | 1 | 16 => spiffe,
        2 => match spiffe.rfind('/') {
            Some(at) if at > "spiffe://".len() => format!("{}/*", &spiffe[..at]),
            _ => format!("{spiffe}*"),
        },
        3 if rng.random_bool(0.3) => {
            let at = cut(&spiffe, rng);
            format!("{}*", &spiffe[..at])
        }
        3 | 4 => {
            let at = cut(&spiffe, rng);
            format!("*{}", &spiffe[at..])
        }
        5 => dns,
        6 => format!("*{}", dns.get(dns.len().min(4)..).unwrap_or_default()),
        7 | 8 => grpc_subject,
        9 => our_subject,
        10 => {
            let at = cut(&grpc_subject, rng);
            format!("{}*", &grpc_subject[..at])
        }
        11 => {
            let at = cut(&grpc_subject, rng);
            format!("*{}", &grpc_subject[at..])
        }
        12 => "*".into(),
        13 => String::new(),
        14 => "*payments*".into(),
        _ => "nobody".into(),
    }
}

fn header(rng: &mut StdRng) -> HeaderSpec {
    let key = match rng.random_range(0..10) {
        0..=4 => pick(rng, TEXT_KEYS),
        5 => BIN_KEY.to_owned(),
        _ => pick(rng, POLICY_ONLY_KEYS),
    };
    let values = (0..rng.random_range(1..=2))
        .map(|_| {
            if rng.random_bool(0.5) {
                pick(rng, TEXT_VALUES)
            } else {
                pick(rng, HEADER_PATTERNS)
            }
        })
        .collect();
    HeaderSpec { key, values }
}

/// A request aimed at `policy`: a path it names (or another), and metadata it matches on
/// (repeated keys included).
pub(crate) fn request(rng: &mut StdRng, policy: &PolicySpec) -> RequestSpec {
    let named: Vec<&String> = policy
        .rules()
        .flat_map(|(_, r)| r.paths.iter().flatten())
        .filter(|p| p.starts_with('/') && !p.is_empty())
        .collect();
    let path = match named.choose(rng) {
        Some(p) if rng.random_bool(0.5) => p.trim_end_matches('*').to_owned(),
        _ => pick(rng, PATHS),
    };
    let path = if path.is_empty() || !path.starts_with('/') {
        pick(rng, PATHS)
    } else {
        path
    };
    let mut metadata = Vec::new();
    for key in TEXT_KEYS {
        if rng.random_bool(0.45) {
            for _ in 0..rng.random_range(1..=3) {
                metadata.push(((*key).to_owned(), MdValue::Text(pick(rng, TEXT_VALUES))));
            }
        }
    }
    if rng.random_bool(0.3) {
        for _ in 0..rng.random_range(1..=2) {
            let bytes = match rng.random_range(0..4) {
                0 => b"admin".to_vec(),
                1 => Vec::new(),
                2 => vec![0xff, 0x00, 0x80],
                _ => {
                    let mut bytes = vec![0; rng.random_range(1..6)];
                    rng.fill_bytes(&mut bytes);
                    bytes
                }
            };
            metadata.push((BIN_KEY.to_owned(), MdValue::Binary(bytes)));
        }
    }
    // gRPC allows `application/grpc+<codec>` and parameters; the ledger sees them as sent.
    let content_type = rng.random_bool(0.15).then(|| {
        pick(
            rng,
            &["application/grpc+proto", "application/grpc;charset=utf-8"],
        )
    });
    RequestSpec {
        path,
        metadata,
        content_type,
    }
}
