//! Policy-load comparison: one valid policy, then every field replaced by every JSON type
//! (and removed, and joined by an unknown sibling), plus malformed documents. Both sides load
//! each; the verdicts (accept or refuse) are compared.

use serde_json::{Value, json};
use zt_authz::Policy;

use crate::grpc_side::{CppServer, Load};

/// One load disagreement.
#[derive(Debug)]
pub(crate) struct LoadDiff {
    /// What was changed, e.g. `/allow_rules/0/name := null`.
    pub(crate) mutation: String,
    /// Whose verdict was stricter, and why the refusing side said no.
    pub(crate) detail: String,
    /// Whether ours refused (and gRPC accepted).
    pub(crate) ours_refused: bool,
}

/// The results of the load comparison.
#[derive(Debug, Default)]
pub(crate) struct LoadReport {
    pub(crate) documents: usize,
    pub(crate) agreements: usize,
    pub(crate) diffs: Vec<LoadDiff>,
}

fn base() -> Value {
    let rule = |name: &str, principal: &str| {
        json!({
            "name": name,
            "source": {"principals": [principal]},
            "request": {
                "paths": ["/ledger.v1.Ledger/*"],
                "headers": [{"key": "x-role", "values": ["admin"]}]
            }
        })
    };
    json!({
        "name": "p",
        "deny_rules": [rule("d", "spiffe://zt.example/ns/prod/sa/auditor")],
        "allow_rules": [rule("a", "*")]
    })
}

/// Every JSON pointer of `value` (objects' members and arrays' first elements), root first.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                pointers(first, format!("{at}/0"), out);
            }
        }
        _ => {}
    }
}

/// The documents to load: `(description, text)`.
fn corpus() -> Vec<(String, String)> {
    let base = base();
    let mut docs = vec![("valid base policy".to_owned(), base.to_string())];
    let mut all = Vec::new();
    pointers(&base, String::new(), &mut all);
    let kinds: [(&str, Value); 8] = [
        ("null", Value::Null),
        ("[]", json!([])),
        ("{}", json!({})),
        ("\"s\"", json!("s")),
        ("\"\"", json!("")),
        ("1", json!(1)),
        ("true", json!(true)),
        ("[\"s\"]", json!(["s"])),
    ];
    for pointer in &all {
        for (label, replacement) in &kinds {
            let mut doc = base.clone();
            if let Some(slot) = doc.pointer_mut(pointer) {
                *slot = replacement.clone();
                docs.push((format!("{pointer} := {label}"), doc.to_string()));
            }
        }
        // Removed.
        if let Some((parent, key)) = pointer.rsplit_once('/') {
            let mut doc = base.clone();
            let removed = match doc.pointer_mut(parent) {
                Some(Value::Object(map)) => map.remove(key).is_some(),
                Some(Value::Array(items)) => {
                    items.clear();
                    true
                }
                _ => false,
            };
            if removed {
                docs.push((format!("{pointer} removed"), doc.to_string()));
            }
        }
        // An unknown sibling member in every object.
        let mut doc = base.clone();
        if let Some(Value::Object(map)) = doc.pointer_mut(pointer) {
            map.insert("nmae".into(), json!("typo"));
            docs.push((
                format!("{pointer} + unknown member \"nmae\""),
                doc.to_string(),
            ));
        }
    }
    let valid = base.to_string();
    let raw: [(&str, String); 12] = [
        ("empty document", String::new()),
        ("whitespace only", "  \n".into()),
        (
            "duplicate member \"name\"",
            valid.replacen("{\"name\":\"p\"", "{\"name\":\"p\",\"name\":\"q\"", 1),
        ),
        (
            "trailing comma",
            valid
                .replacen("\"name\":\"p\"", "\"name\":\"p\",", 1)
                .replace(",,", ","),
        ),
        ("trailing garbage", format!("{valid} x")),
        ("two documents", format!("{valid}{valid}")),
        ("comment", format!("/* c */{valid}")),
        ("byte order mark", format!("\u{feff}{valid}")),
        (
            "lone surrogate escape in name",
            valid.replacen("\"name\":\"p\"", "\"name\":\"\\ud800\"", 1),
        ),
        (
            "NUL escape in a principal",
            valid.replacen("\"*\"", "\"a\\u0000b\"", 1),
        ),
        (
            "number 1e400 as name",
            valid.replacen("\"name\":\"p\"", "\"name\":1e400", 1),
        ),
        (
            "deeply nested array in principals",
            valid.replacen(
                "[\"*\"]",
                &format!("{}{}", "[".repeat(200), "]".repeat(200)),
                1,
            ),
        ),
    ];
    for (label, text) in raw {
        docs.push((label.to_owned(), text));
    }
    docs
}

/// Loads every document on both sides and compares.
pub(crate) async fn compare(server: &mut CppServer) -> anyhow::Result<LoadReport> {
    let mut report = LoadReport::default();
    for (mutation, text) in corpus() {
        report.documents += 1;
        let ours = Policy::from_json(&text);
        let grpc = server.check(&text).await?;
        match (ours, grpc) {
            (Ok(_), Load::Accepted(_)) | (Err(_), Load::Refused(..)) => report.agreements += 1,
            (Err(e), Load::Accepted(_)) => report.diffs.push(LoadDiff {
                mutation,
                detail: format!("ours refuses ({e}); gRPC accepts"),
                ours_refused: true,
            }),
            (Ok(_), Load::Refused(_, message)) => report.diffs.push(LoadDiff {
                mutation,
                detail: format!("gRPC refuses ({message}); ours accepts"),
                ours_refused: false,
            }),
        }
    }
    Ok(report)
}
