//! SPIFFE IDs (`spiffe://trust-domain/path`) parsed by the rules of the SPIFFE-ID specification.
//!
//! The parser is strict on purpose: an ID that two implementations could read differently
//! (uppercase, percent-encoding, dot segments, a port) is refused rather than normalised, so an
//! attacker cannot craft two spellings of one identity.

use std::fmt;
use std::str::FromStr;

use crate::error::SpiffeIdError;

/// The specification's limit on the length of a whole SPIFFE ID, in bytes.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// The specification's limit on the length of a trust domain name, in bytes (SPIFFE-ID
/// section 2.1, following the DNS limit on a host name).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

const SCHEME: &str = "spiffe://";

/// A trust domain: the authority part of a SPIFFE ID (`zt.example`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(Box<str>);

impl TrustDomain {
    /// Parses a trust domain name, written bare (`zt.example`), as its ID
    /// (`spiffe://zt.example`), or as any workload's ID in it
    /// (`spiffe://zt.example/ns/prod/sa/ledger` is `zt.example`), as go-spiffe's
    /// `TrustDomainFromString` and rust-spiffe read it.
    ///
    /// Errors: an empty name, a character other than `a-z 0-9 . - _` (uppercase, a port,
    /// userinfo), more than [`MAX_TRUST_DOMAIN_LEN`] bytes, or an invalid workload ID.
    pub fn new(name: &str) -> Result<Self, SpiffeIdError> {
        let bare = match name.strip_prefix(SCHEME) {
            Some(rest) if rest.contains('/') => {
                return SpiffeId::new(name).map(|id| Self(id.trust_domain().into()));
            }
            Some(rest) => rest,
            None => name,
        };
        validate_trust_domain(bare)?;
        Ok(Self(bare.into()))
    }

    /// The name, without scheme.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({:?})", &*self.0)
    }
}

/// A workload's SPIFFE ID, for example `spiffe://zt.example/ns/prod/sa/ledger`.
///
/// Always valid: the only way to get one is through [`SpiffeId::new`], which enforces every rule
/// of the specification, and requires a non-empty path (a bare trust domain names no workload).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: Box<str>,
    /// Byte offset where the path starts (the first `/` after the trust domain).
    path_start: usize,
}

impl SpiffeId {
    /// Parses and validates a workload SPIFFE ID.
    pub fn new(id: &str) -> Result<Self, SpiffeIdError> {
        if id.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if id.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = id.strip_prefix(SCHEME).ok_or(SpiffeIdError::WrongScheme)?;
        let (domain, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        validate_trust_domain(domain)?;
        if path.is_empty() {
            return Err(SpiffeIdError::MissingPath);
        }
        validate_path(path)?;
        Ok(Self {
            id: id.into(),
            path_start: SCHEME.len() + domain.len(),
        })
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The trust domain name (`zt.example`).
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// The path, with its leading `/` (`/ns/prod/sa/ledger`).
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// The path's segments (`["ns", "prod", "sa", "ledger"]`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path()[1..].split('/')
    }

    /// Whether this ID belongs to `domain`.
    pub fn is_member_of(&self, domain: &TrustDomain) -> bool {
        self.trust_domain() == domain.as_str()
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", &*self.id)
    }
}

fn validate_trust_domain(domain: &str) -> Result<(), SpiffeIdError> {
    if domain.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if domain.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    match domain
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        Some(bad) => Err(SpiffeIdError::BadTrustDomainChar(bad)),
        None => Ok(()),
    }
}

/// `path` starts with `/` and is not just `/`... or is, which is a trailing slash.
fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    for segment in path[1..].split('/') {
        if let Some(bad) = segment
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
        {
            return Err(SpiffeIdError::BadPathChar(bad));
        }
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
    }
    if path.ends_with('/') {
        return Err(SpiffeIdError::TrailingSlash);
    }
    if path.contains("//") {
        return Err(SpiffeIdError::EmptySegment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids_and_splits_them() {
        let id = SpiffeId::new("spiffe://zt.example/ns/prod/sa/ledger").unwrap();
        assert_eq!(id.trust_domain(), "zt.example");
        assert_eq!(id.path(), "/ns/prod/sa/ledger");
        assert_eq!(
            id.segments().collect::<Vec<_>>(),
            ["ns", "prod", "sa", "ledger"]
        );
        assert!(id.is_member_of(&TrustDomain::new("zt.example").unwrap()));
        assert!(!id.is_member_of(&TrustDomain::new("zt.example.evil").unwrap()));

        for ok in [
            "spiffe://a/b",
            "spiffe://td-1_x.y/Path.With-Mixed_Case/x",
            "spiffe://td/a/.../b", // "..." is a name, not a dot segment
        ] {
            assert!(SpiffeId::new(ok).is_ok(), "{ok} should parse");
        }
    }

    #[test]
    fn refuses_every_syntax_violation_with_its_reason() {
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        let cases: &[(&str, SpiffeIdError)] = &[
            ("", SpiffeIdError::Empty),
            ("https://td/a", SpiffeIdError::WrongScheme),
            ("SPIFFE://td/a", SpiffeIdError::WrongScheme),
            ("spiffe:/td/a", SpiffeIdError::WrongScheme),
            ("spiffe:///a", SpiffeIdError::MissingTrustDomain),
            ("spiffe://TD/a", SpiffeIdError::BadTrustDomainChar('T')),
            ("spiffe://td:8443/a", SpiffeIdError::BadTrustDomainChar(':')),
            ("spiffe://user@td/a", SpiffeIdError::BadTrustDomainChar('@')),
            ("spiffe://td?q=1", SpiffeIdError::BadTrustDomainChar('?')),
            ("spiffe://td", SpiffeIdError::MissingPath),
            ("spiffe://td/", SpiffeIdError::TrailingSlash),
            ("spiffe://td/a/", SpiffeIdError::TrailingSlash),
            ("spiffe://td/a//b", SpiffeIdError::EmptySegment),
            ("spiffe://td/a/./b", SpiffeIdError::DotSegment),
            ("spiffe://td/a/../b", SpiffeIdError::DotSegment),
            ("spiffe://td/..", SpiffeIdError::DotSegment),
            ("spiffe://td/a%20b", SpiffeIdError::BadPathChar('%')),
            ("spiffe://td/a?x=1", SpiffeIdError::BadPathChar('?')),
            ("spiffe://td/a#frag", SpiffeIdError::BadPathChar('#')),
            ("spiffe://td/a b", SpiffeIdError::BadPathChar(' ')),
            (&long, SpiffeIdError::TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(SpiffeId::new(input).as_ref(), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn trust_domain_accepts_bare_or_scheme_form() {
        assert_eq!(
            TrustDomain::new("spiffe://zt.example").unwrap().as_str(),
            "zt.example"
        );
        assert_eq!(
            TrustDomain::new("zt.example").unwrap().as_str(),
            "zt.example"
        );
        assert!(TrustDomain::new("Zt.example").is_err());
        assert!(TrustDomain::new("zt.example/path").is_err());
        assert!(TrustDomain::new("").is_err());
    }

    #[test]
    fn trust_domain_from_a_workload_id_is_its_domain() {
        assert_eq!(
            TrustDomain::new("spiffe://zt.example/ns/prod/sa/ledger")
                .unwrap()
                .as_str(),
            "zt.example"
        );
        // An ID that is not valid is not reduced to its domain.
        assert_eq!(
            TrustDomain::new("spiffe://zt.example/a/../b"),
            Err(SpiffeIdError::DotSegment)
        );
        assert_eq!(
            TrustDomain::new("spiffe://zt.example/"),
            Err(SpiffeIdError::TrailingSlash)
        );
    }

    #[test]
    fn trust_domains_are_at_most_255_bytes() {
        let longest = format!(
            "{}.example",
            "a".repeat(MAX_TRUST_DOMAIN_LEN - ".example".len())
        );
        assert!(TrustDomain::new(&longest).is_ok());
        let too_long = format!("a{longest}");
        for input in [
            too_long.clone(),
            format!("spiffe://{too_long}"),
            format!("spiffe://{too_long}/workload"),
        ] {
            assert_eq!(
                TrustDomain::new(&input),
                Err(SpiffeIdError::TrustDomainTooLong),
                "{input}"
            );
        }
        assert_eq!(
            SpiffeId::new(&format!("spiffe://{too_long}/w")),
            Err(SpiffeIdError::TrustDomainTooLong)
        );
    }
}
