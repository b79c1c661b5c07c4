//! Compiled string patterns: A43's four forms, plus SPIFFE-aware principal patterns.

use zt_identity::{SpiffeId, TrustDomain};

/// One of A43's string patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StringMatch {
    /// `value`: equal.
    Exact(Box<str>),
    /// `value*`: starts with.
    Prefix(Box<str>),
    /// `*value`: ends with.
    Suffix(Box<str>),
    /// `*`: any non-empty value (grpc-go translates it to the regex `.+`).
    Present,
}

impl StringMatch {
    /// Compiles a pattern exactly as grpc-go's translator reads it.
    pub(crate) fn new(pattern: &str) -> Self {
        if pattern == "*" {
            Self::Present
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            Self::Prefix(prefix.into())
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            Self::Suffix(suffix.into())
        } else {
            Self::Exact(pattern.into())
        }
    }

    /// Whether the pattern was written `*x*`. A43 does not define it: grpc-go (and this crate)
    /// read the trailing `*` first, a prefix `*x`; gRPC C++ reads a suffix `x*`.
    pub(crate) fn is_two_sided(&self) -> bool {
        matches!(self, Self::Prefix(prefix) if prefix.starts_with('*'))
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        self.matches_bytes(value.as_bytes())
    }

    /// Matches raw bytes (header values, which need not be UTF-8), as gRPC compares them.
    pub(crate) fn matches_bytes(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(exact) => value == exact.as_bytes(),
            Self::Prefix(prefix) => value.starts_with(prefix.as_bytes()),
            Self::Suffix(suffix) => value.ends_with(suffix.as_bytes()),
            Self::Present => !value.is_empty(),
        }
    }
}

/// A `spiffe://` principal pattern, matched on the parsed ID rather than on its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpiffeMatch {
    /// `spiffe://td/a/b`: this ID only.
    Exact(SpiffeId),
    /// `spiffe://td/a/*`: any ID in `td` whose path has the segments `a` and at least one more.
    /// `spiffe://td/*` has no fixed segments: any workload of the trust domain.
    Under {
        trust_domain: TrustDomain,
        segments: Box<[Box<str>]>,
    },
}

impl SpiffeMatch {
    /// Compiles a pattern that starts with `spiffe://`.
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        if !pattern.contains('*') {
            return SpiffeId::new(pattern)
                .map(Self::Exact)
                .map_err(|e| format!("not a valid SPIFFE ID: {e}"));
        }
        let Some(base) = pattern.strip_suffix("/*") else {
            return Err(
                "in a spiffe:// pattern '*' may only stand for whole trailing segments, \
                        as in spiffe://td/ns/* (a raw prefix could cross a trust-domain boundary)"
                    .into(),
            );
        };
        if base.contains('*') {
            return Err("only one '*' is allowed, as the last segment".into());
        }
        // `spiffe://*` leaves no `spiffe://` prefix once `/*` is stripped.
        let Some(rest) = base.strip_prefix("spiffe://") else {
            return Err("a trust domain is required, as in spiffe://td/*".into());
        };
        let (domain, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        let trust_domain =
            TrustDomain::new(domain).map_err(|e| format!("invalid trust domain: {e}"))?;
        let segments = if path.is_empty() {
            Box::default()
        } else {
            // Validate the fixed part with the ID parser, so it obeys the same syntax rules.
            let fixed = SpiffeId::new(base).map_err(|e| format!("invalid path: {e}"))?;
            fixed.segments().map(Box::from).collect()
        };
        Ok(Self::Under {
            trust_domain,
            segments,
        })
    }

    pub(crate) fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Exact(exact) => exact == id,
            Self::Under {
                trust_domain,
                segments,
            } => {
                if !id.is_member_of(trust_domain) {
                    return false;
                }
                let mut actual = id.segments();
                segments.iter().all(|fixed| actual.next() == Some(&**fixed))
                    && actual.next().is_some()
            }
        }
    }
}

/// Pattern subsumption, for `policy check`: `a.covers(b)` means every value `b` matches, `a`
/// matches too. Conservative: `false` when that cannot be shown from the patterns alone.
impl StringMatch {
    pub(crate) fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Present, Self::Exact(value)) => !value.is_empty(),
            (Self::Present, _) => true,
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Prefix(a), Self::Exact(b) | Self::Prefix(b)) => b.starts_with(&**a),
            (Self::Suffix(a), Self::Exact(b) | Self::Suffix(b)) => b.ends_with(&**a),
            _ => false,
        }
    }
}

impl SpiffeMatch {
    pub(crate) fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (_, Self::Exact(id)) => self.matches(id),
            (
                Self::Under {
                    trust_domain,
                    segments,
                },
                Self::Under {
                    trust_domain: other_domain,
                    segments: other_segments,
                },
            ) => trust_domain == other_domain && other_segments.starts_with(segments),
            (Self::Exact(_), Self::Under { .. }) => false,
        }
    }

    /// What every ID this pattern matches starts with: `spiffe://td/ns/` for `spiffe://td/ns/*`.
    pub(crate) fn common_prefix(&self) -> String {
        match self {
            Self::Exact(id) => id.as_str().to_owned(),
            Self::Under {
                trust_domain,
                segments,
            } => {
                let mut prefix = format!("spiffe://{trust_domain}/");
                for segment in segments {
                    prefix.push_str(segment);
                    prefix.push('/');
                }
                prefix
            }
        }
    }
}

/// The pattern as written in a policy.
impl std::fmt::Display for StringMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(exact) => write!(f, "{exact}"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Suffix(suffix) => write!(f, "*{suffix}"),
            Self::Present => f.write_str("*"),
        }
    }
}

/// The pattern as written in a policy.
impl std::fmt::Display for SpiffeMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(id) => write!(f, "{id}"),
            Self::Under { .. } => write!(f, "{}*", self.common_prefix()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::new(s).unwrap()
    }

    #[test]
    fn string_patterns_follow_a43() {
        let table = [
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("ab*", "abcd", true),
            ("ab*", "xab", false),
            ("*cd", "abcd", true),
            ("*cd", "cdx", false),
            ("*", "x", true),
            ("*", "", false),
            ("", "", true),
        ];
        for (pattern, value, want) in table {
            assert_eq!(
                StringMatch::new(pattern).matches(value),
                want,
                "{pattern} vs {value}"
            );
        }
    }

    #[test]
    fn spiffe_patterns_respect_trust_domain_and_segments() {
        let under_ns = SpiffeMatch::new("spiffe://td/ns/*").unwrap();
        assert!(under_ns.matches(&id("spiffe://td/ns/a")));
        assert!(under_ns.matches(&id("spiffe://td/ns/a/b")));
        assert!(!under_ns.matches(&id("spiffe://td.evil/ns/a")));
        assert!(!under_ns.matches(&id("spiffe://td/nsx/a")));
        assert!(!under_ns.matches(&id("spiffe://td/ns")));

        let whole_domain = SpiffeMatch::new("spiffe://td/*").unwrap();
        assert!(whole_domain.matches(&id("spiffe://td/x")));
        assert!(!whole_domain.matches(&id("spiffe://tdx/x")));

        let exact = SpiffeMatch::new("spiffe://td/ns/a").unwrap();
        assert!(exact.matches(&id("spiffe://td/ns/a")));
        assert!(!exact.matches(&id("spiffe://td/ns/a/b")));
    }

    #[test]
    fn ambiguous_spiffe_patterns_are_refused() {
        for bad in [
            "spiffe://td*",
            "spiffe://td/ns/pay*",
            "spiffe://td/*/a/*",
            "spiffe://TD/ns/*",
            "spiffe://td/a/../*",
            "spiffe://td",
            "spiffe://td/a?b",
            "spiffe://*",
            "spiffe:///*",
            "spiffe://*/*",
        ] {
            assert!(SpiffeMatch::new(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn coverage_between_patterns() {
        let s = StringMatch::new;
        for (wide, narrow, want) in [
            ("*", "abc", true),
            ("*", "", false),
            ("*", "a*", true),
            ("/a/*", "/a/b", true),
            ("/a/*", "/a/b*", true),
            ("/a/b*", "/a/*", false),
            ("*Get", "/x/Get", true),
            ("*Get", "*Get", true),
            ("abc", "abc", true),
            ("abc", "ab*", false),
        ] {
            assert_eq!(s(wide).covers(&s(narrow)), want, "{wide} covers {narrow}");
            assert_eq!(s(wide).to_string(), wide, "round trip");
        }
        let p = |text| SpiffeMatch::new(text).unwrap();
        for (wide, narrow, want) in [
            ("spiffe://td/*", "spiffe://td/ns/a", true),
            ("spiffe://td/*", "spiffe://td/ns/*", true),
            ("spiffe://td/ns/*", "spiffe://td/*", false),
            ("spiffe://td/ns/*", "spiffe://td/nsx/*", false),
            ("spiffe://td/*", "spiffe://td2/*", false),
            ("spiffe://td/a", "spiffe://td/a", true),
            ("spiffe://td/a", "spiffe://td/a/*", false),
        ] {
            assert_eq!(p(wide).covers(&p(narrow)), want, "{wide} covers {narrow}");
            assert_eq!(p(wide).to_string(), wide, "round trip");
        }
    }
}
