//! Reading a policy document: exactly the schema of gRFC A43 (and A59's audit options), with
//! every field's JSON type checked, and nothing else.
//!
//! The reader fails closed. A value of the wrong type (`null`, an array where an object
//! belongs, a number where a string belongs), an unknown field or a key written twice is an
//! error naming its JSON path (`allow_rules[0].source: expected an object, found null`),
//! never read as "absent". An absent or empty rule part matches everything in A43, so reading
//! a malformed one as absent would widen access; gRPC's own translator refuses the same inputs.
//!
//! Parsing is two steps: the text becomes a [`Json`] tree that keeps every key (so a repeated
//! key can be reported, not silently overwritten as most JSON maps do), then typed readers walk
//! the tree with the path of each value.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::PolicyError;
use crate::policy::AuditCondition;

/// A policy as written: names and patterns, not yet compiled.
#[derive(Debug)]
pub(crate) struct PolicyDoc {
    pub(crate) name: String,
    pub(crate) deny_rules: Vec<RuleDoc>,
    pub(crate) allow_rules: Vec<RuleDoc>,
    pub(crate) audit_condition: AuditCondition,
    pub(crate) audit_loggers: Vec<AuditLoggerDoc>,
}

/// One rule; `path` is where it is in the document (`allow_rules[2]`), for error messages.
#[derive(Debug)]
pub(crate) struct RuleDoc {
    pub(crate) path: String,
    pub(crate) name: String,
    pub(crate) principals: Vec<String>,
    pub(crate) paths: Vec<String>,
    pub(crate) headers: Vec<HeaderDoc>,
}

/// One entry of `request.headers`.
#[derive(Debug)]
pub(crate) struct HeaderDoc {
    pub(crate) path: String,
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
}

/// One entry of `audit_logging_options.audit_loggers`.
#[derive(Debug)]
pub(crate) struct AuditLoggerDoc {
    pub(crate) path: String,
    pub(crate) name: String,
    /// Whether the logger's `config` object has any member.
    pub(crate) configured: bool,
    pub(crate) is_optional: bool,
}

impl PolicyDoc {
    /// Parses `text` and checks it against the schema.
    pub(crate) fn parse(text: &str) -> Result<Self, PolicyError> {
        let json: Json = serde_json::from_str(text)?;
        let top = Object::read(
            &json,
            "",
            &["name", "deny_rules", "allow_rules", "audit_logging_options"],
        )?;
        let name = top.required_string("name")?;
        let deny_rules = top.objects("deny_rules", RuleDoc::read)?;
        let allow_rules = top.objects("allow_rules", RuleDoc::read)?;
        if allow_rules.is_empty() {
            // A43: a policy must allow something; an empty or absent list is refused.
            return Err(PolicyError::Missing {
                path: "allow_rules".to_owned(),
            });
        }
        let (audit_condition, audit_loggers) = match top.get("audit_logging_options") {
            None => (AuditCondition::default(), Vec::new()),
            Some((value, path)) => {
                let options = Object::read(value, &path, &["audit_condition", "audit_loggers"])?;
                let condition = match options.optional_string("audit_condition")? {
                    None => AuditCondition::default(),
                    Some(text) => AuditCondition::from_name(&text).ok_or_else(|| {
                        PolicyError::UnknownValue {
                            path: field(&path, "audit_condition"),
                            value: text,
                            allowed: AuditCondition::NAMES,
                        }
                    })?,
                };
                (
                    condition,
                    options.objects("audit_loggers", AuditLoggerDoc::read)?,
                )
            }
        };
        Ok(Self {
            name,
            deny_rules,
            allow_rules,
            audit_condition,
            audit_loggers,
        })
    }
}

impl RuleDoc {
    fn read(value: &Json, path: String) -> Result<Self, PolicyError> {
        let rule = Object::read(value, &path, &["name", "source", "request"])?;
        let name = rule.required_string("name")?;
        let principals = match rule.get("source") {
            None => Vec::new(),
            Some((value, path)) => {
                Object::read(value, &path, &["principals"])?.strings("principals")?
            }
        };
        let (paths, headers) = match rule.get("request") {
            None => (Vec::new(), Vec::new()),
            Some((value, path)) => {
                let request = Object::read(value, &path, &["paths", "headers"])?;
                (
                    request.strings("paths")?,
                    request.objects("headers", HeaderDoc::read)?,
                )
            }
        };
        Ok(Self {
            path,
            name,
            principals,
            paths,
            headers,
        })
    }
}

impl HeaderDoc {
    fn read(value: &Json, path: String) -> Result<Self, PolicyError> {
        let header = Object::read(value, &path, &["key", "values"])?;
        let key = header.required_string("key")?;
        let values = header.strings("values")?;
        if values.is_empty() {
            // A header matcher with no value could never match.
            return Err(PolicyError::Missing {
                path: field(&path, "values"),
            });
        }
        Ok(Self { path, key, values })
    }
}

impl AuditLoggerDoc {
    /// Either spelling: grpc-go's `{"name": ..., "config": {...}, "is_optional": ...}`, or
    /// the keyed shorthand `{"<logger name>": {config}}` (the name as the only key).
    fn read(value: &Json, path: String) -> Result<Self, PolicyError> {
        let Json::Object(members) = value else {
            return Err(PolicyError::wrong_type(&path, "an object", value));
        };
        if members.iter().any(|(key, _)| key == "name") {
            let logger = Object::read(value, &path, &["name", "config", "is_optional"])?;
            let configured = match logger.get("config") {
                None => false,
                Some((value, path)) => !Object::read_any(value, &path)?.members.is_empty(),
            };
            return Ok(Self {
                name: logger.required_string("name")?,
                configured,
                is_optional: logger.optional_bool("is_optional")?.unwrap_or(false),
                path,
            });
        }
        let [(name, config)] = members.as_slice() else {
            return Err(PolicyError::WrongType {
                path,
                expected: "{\"name\": ..., \"config\": {...}, \"is_optional\": ...} or {\"<logger name>\": {...}}",
                found: "an object with other keys",
            });
        };
        let configured = !Object::read_any(config, &field(&path, name))?
            .members
            .is_empty();
        Ok(Self {
            path,
            name: name.clone(),
            configured,
            is_optional: false,
        })
    }
}

// ===== the JSON tree =====

/// A parsed JSON value that keeps every member of an object in order, repeated keys included.
#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Number,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The type's name as a message says it: `null`, `a string`, `an array`, ...
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Number)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Number)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Number)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

// ===== paths and typed access =====

/// The path of member `name` of the value at `parent`: `allow_rules[0].source`.
fn field(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Where a value is, for a message: the document itself has the empty path.
fn shown(path: &str) -> String {
    if path.is_empty() {
        "(the document)".to_owned()
    } else {
        path.to_owned()
    }
}

impl PolicyError {
    fn wrong_type(path: &str, expected: &'static str, found: &Json) -> Self {
        Self::WrongType {
            path: shown(path),
            expected,
            found: found.kind(),
        }
    }
}

/// An object whose keys were checked: each at most once and, for [`Object::read`], each one of
/// the schema's.
struct Object<'j> {
    members: &'j [(String, Json)],
    path: String,
}

impl<'j> Object<'j> {
    fn read(
        value: &'j Json,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Result<Self, PolicyError> {
        let object = Self::read_any(value, path)?;
        if let Some((key, _)) = object
            .members
            .iter()
            .find(|(key, _)| !allowed.contains(&key.as_str()))
        {
            return Err(PolicyError::UnknownField {
                path: field(path, key),
                allowed,
            });
        }
        Ok(object)
    }

    /// An object with any keys (a logger's `config`), still each at most once.
    fn read_any(value: &'j Json, path: &str) -> Result<Self, PolicyError> {
        let Json::Object(members) = value else {
            return Err(PolicyError::wrong_type(path, "an object", value));
        };
        for (at, (key, _)) in members.iter().enumerate() {
            if members[..at].iter().any(|(earlier, _)| earlier == key) {
                return Err(PolicyError::DuplicateKey {
                    path: field(path, key),
                });
            }
        }
        Ok(Self {
            members,
            path: path.to_owned(),
        })
    }

    /// A member's value and path, if present.
    fn get(&self, key: &str) -> Option<(&'j Json, String)> {
        self.members
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| (value, field(&self.path, key)))
    }

    fn optional_string(&self, key: &str) -> Result<Option<String>, PolicyError> {
        match self.get(key) {
            None => Ok(None),
            Some((Json::String(text), _)) => Ok(Some(text.clone())),
            Some((other, path)) => Err(PolicyError::wrong_type(&path, "a string", other)),
        }
    }

    /// A string that must be present and non-empty (rule and policy names, header keys).
    fn required_string(&self, key: &str) -> Result<String, PolicyError> {
        match self.optional_string(key)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(PolicyError::Missing {
                path: field(&self.path, key),
            }),
        }
    }

    fn optional_bool(&self, key: &str) -> Result<Option<bool>, PolicyError> {
        match self.get(key) {
            None => Ok(None),
            Some((Json::Bool(value), _)) => Ok(Some(*value)),
            Some((other, path)) => Err(PolicyError::wrong_type(&path, "a boolean", other)),
        }
    }

    /// An optional array's items with their paths: absent is empty, `null` is an error.
    fn array(&self, key: &str) -> Result<Vec<(&'j Json, String)>, PolicyError> {
        let path = field(&self.path, key);
        match self.get(key) {
            None => Ok(Vec::new()),
            Some((Json::Array(items), _)) => Ok(items
                .iter()
                .enumerate()
                .map(|(index, item)| (item, format!("{path}[{index}]")))
                .collect()),
            Some((other, _)) => Err(PolicyError::wrong_type(&path, "an array", other)),
        }
    }

    /// An optional array of strings.
    fn strings(&self, key: &str) -> Result<Vec<String>, PolicyError> {
        self.array(key)?
            .into_iter()
            .map(|(item, path)| match item {
                Json::String(text) => Ok(text.clone()),
                other => Err(PolicyError::wrong_type(&path, "a string", other)),
            })
            .collect()
    }

    /// An optional array of objects, each read by `read`.
    fn objects<T>(
        &self,
        key: &str,
        read: fn(&Json, String) -> Result<T, PolicyError>,
    ) -> Result<Vec<T>, PolicyError> {
        self.array(key)?
            .into_iter()
            .map(|(item, path)| read(item, path))
            .collect()
    }
}
