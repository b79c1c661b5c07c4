//! The SPIFFE ID parser, on any string: never panics, and what it accepts obeys the
//! SPIFFE-ID rules it claims to enforce and reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zt_identity::{MAX_SPIFFE_ID_LEN, SpiffeId};

fuzz_target!(|input: &str| {
    let Ok(id) = SpiffeId::new(input) else {
        return;
    };
    assert_eq!(id.as_str(), input, "an accepted ID is kept verbatim");
    assert!(input.len() <= MAX_SPIFFE_ID_LEN);
    assert!(input.starts_with("spiffe://"));
    let domain = id.trust_domain();
    assert!(!domain.is_empty());
    assert!(
        domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b)),
        "trust domain {domain:?}"
    );
    for segment in id.segments() {
        assert!(!segment.is_empty() && segment != "." && segment != "..", "{input:?}");
        assert!(
            segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
            "segment {segment:?}"
        );
    }
    let again = SpiffeId::new(id.as_str()).expect("an accepted ID parses again");
    assert_eq!(again, id);
});
