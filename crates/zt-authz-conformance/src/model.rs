//! The cases both engines judge: an A43 policy kept as a structure (so it can be shrunk), a
//! request (method path and metadata), and their JSON and wire forms.

use serde_json::{Map, Value, json};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataKey, MetadataKey, MetadataMap};

/// An A43 policy as a structure. `None` fields are left out of the JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PolicySpec {
    pub(crate) name: String,
    pub(crate) deny: Option<Vec<RuleSpec>>,
    pub(crate) allow: Vec<RuleSpec>,
    /// Extra top-level members, written as they are (unknown fields, audit options).
    pub(crate) extra: Vec<(String, Value)>,
}

/// One rule of `deny_rules` or `allow_rules`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleSpec {
    pub(crate) name: String,
    pub(crate) principals: Option<Vec<String>>,
    pub(crate) paths: Option<Vec<String>>,
    pub(crate) headers: Option<Vec<HeaderSpec>>,
    /// An unknown member of `source` (a misspelt key), written as is.
    pub(crate) source_extra: Option<(String, Value)>,
}

/// One entry of a rule's `request.headers`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeaderSpec {
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
}

impl PolicySpec {
    /// The policy as A43 JSON.
    pub(crate) fn to_json(&self) -> String {
        let mut doc = Map::new();
        doc.insert("name".into(), json!(self.name));
        if let Some(deny) = &self.deny {
            doc.insert(
                "deny_rules".into(),
                deny.iter().map(RuleSpec::to_value).collect(),
            );
        }
        doc.insert(
            "allow_rules".into(),
            self.allow.iter().map(RuleSpec::to_value).collect(),
        );
        for (key, value) in &self.extra {
            doc.insert(key.clone(), value.clone());
        }
        Value::Object(doc).to_string()
    }

    /// Every rule, deny rules first.
    pub(crate) fn rules(&self) -> impl Iterator<Item = (bool, &RuleSpec)> {
        self.deny
            .iter()
            .flatten()
            .map(|r| (true, r))
            .chain(self.allow.iter().map(|r| (false, r)))
    }
}

impl RuleSpec {
    fn to_value(&self) -> Value {
        let mut rule = Map::new();
        rule.insert("name".into(), json!(self.name));
        if self.principals.is_some() || self.source_extra.is_some() {
            let mut source = Map::new();
            if let Some(principals) = &self.principals {
                source.insert("principals".into(), json!(principals));
            }
            if let Some((key, value)) = &self.source_extra {
                source.insert(key.clone(), value.clone());
            }
            rule.insert("source".into(), Value::Object(source));
        }
        if self.paths.is_some() || self.headers.is_some() {
            let mut request = Map::new();
            if let Some(paths) = &self.paths {
                request.insert("paths".into(), json!(paths));
            }
            if let Some(headers) = &self.headers {
                let headers: Vec<_> = headers
                    .iter()
                    .map(|h| json!({"key": h.key, "values": h.values}))
                    .collect();
                request.insert("headers".into(), Value::Array(headers));
            }
            rule.insert("request".into(), Value::Object(request));
        }
        Value::Object(rule)
    }
}

/// A metadata value: text, or bytes under a `-bin` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MdValue {
    Text(String),
    Binary(Vec<u8>),
}

/// One RPC: its method path and metadata (repeated keys are repeated entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestSpec {
    pub(crate) path: String,
    pub(crate) metadata: Vec<(String, MdValue)>,
    /// A `content-type` other than tonic's `application/grpc` (set below tonic, on the wire).
    pub(crate) content_type: Option<String>,
}

impl RequestSpec {
    /// The metadata as tonic sends it (binary values base64-encoded under `-bin` keys).
    pub(crate) fn metadata_map(&self) -> anyhow::Result<MetadataMap> {
        let mut map = MetadataMap::new();
        for (key, value) in &self.metadata {
            match value {
                MdValue::Text(text) => {
                    let key: MetadataKey<tonic::metadata::Ascii> = key.parse()?;
                    let value: AsciiMetadataValue = text.parse()?;
                    map.append(key, value);
                }
                MdValue::Binary(bytes) => {
                    let key = BinaryMetadataKey::from_bytes(key.as_bytes())?;
                    map.append_bin(key, tonic::metadata::BinaryMetadataValue::from_bytes(bytes));
                }
            }
        }
        Ok(map)
    }

    /// A short human-readable form for reports.
    pub(crate) fn describe(&self) -> String {
        let mut out = self.path.clone();
        if let Some(content_type) = &self.content_type {
            out.push_str(&format!(" content-type={content_type:?}"));
        }
        for (key, value) in &self.metadata {
            match value {
                MdValue::Text(text) => out.push_str(&format!(" {key}={text:?}")),
                MdValue::Binary(bytes) => {
                    out.push_str(&format!(" {key}=bytes{:?}", String::from_utf8_lossy(bytes)))
                }
            }
        }
        out
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex text.
pub(crate) fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("bad hex at {i}"))
        })
        .collect()
}
