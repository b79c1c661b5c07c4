//! A certificate's subject as grpc-go writes it, the text gRFC A43 principals match.
//!
//! gRFC A43 says a principal is matched against the peer certificate's subject but not how the
//! subject is spelled, and gRPC implementations differ: grpc-go uses Go's
//! `crypto/x509/pkix.Name.String()`, gRPC C++ uses OpenSSL's RFC 2253 printer. This project
//! promises that a policy written for grpc-go loads and decides the same here, so
//! [`pkix_name_string`] reproduces Go's text exactly, including where it departs from RFC 4514
//! (attribute order fixed by type, not by the certificate; unknown attribute types as hex).
//!
//! The rules, with the Go source each comes from (`src/crypto/x509/parser.go`: `parseName`,
//! `parseASN1String`; `src/crypto/x509/pkix/pkix.go`: `Name.FillFromRDNSequence`,
//! `Name.ToRDNSequence`, `Name.String`, `RDNSequence.String`; `src/encoding/asn1/marshal.go`):
//!
//! 1. The name is read from its DER as Go reads it: lengths in the fewest octets, attribute
//!    types OIDs with every arc below 2^31, an empty RDN SET allowed (it adds nothing). Every
//!    attribute value must be one of the string types Go reads, decoded as Go 1.25 and later
//!    do: PrintableString (ASCII letters, digits, ` '()+,-./:=?`, plus `*` and `&`), IA5String
//!    (ASCII), NumericString (digits and space), UTF8String (valid UTF-8), T61String (read as
//!    Latin-1), BMPString (UCS-2: even length, one trailing `00 00` dropped, surrogates and the
//!    noncharacters U+FFFE, U+FFFF, U+FDD0..U+FDEF refused). Anything else makes Go refuse the
//!    whole certificate, and so does this crate ([`IdentityError::Malformed`]).
//!    Go 1.24 and older read T61String bytes as UTF-8 and BMPString as UTF-16; only names using
//!    those two obsolete types can render differently there.
//! 2. The nine known types (`2.5.4.x`: C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER)
//!    are collected by type, whatever RDN they were in: every C, ST, L, STREET, POSTALCODE, O
//!    and OU value is kept in certificate order; only the **last** CN and the last
//!    SERIALNUMBER are kept, and dropped when empty.
//! 3. The sequence Go prints is: each other attribute (emailAddress, UID, DC, title, ...) as an
//!    RDN of its own, in certificate order; then one RDN per known type that has values, in the
//!    order C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER, holding all of that type's
//!    values. It is printed **last RDN first**, RDNs joined by `,` and the values of one RDN by
//!    `+` (in their order). So a subject reads `SERIALNUMBER=..,CN=..,OU=..,O=..,POSTALCODE=..,
//!    STREET=..,L=..,ST=..,C=..` followed by the other attributes, last first. Multi-valued
//!    RDNs of the certificate are not kept; two values of one known type always share one RDN.
//! 4. A known type is written `NAME=value`, the value escaped with `\` before `,` `+` `"` `\`
//!    `<` `>` `;` anywhere, `#` as the first byte, and a space as the first or last byte. Nothing
//!    else is escaped: non-ASCII text is kept as UTF-8 (`CN=Müller`, never `\C3\BC`), and so are
//!    control characters.
//! 5. Any other type is written as its dotted OID, `=#`, and the lowercase hex of the value as
//!    Go's `asn1.Marshal` re-encodes the decoded string: PrintableString (tag `13`) when every
//!    character is in the strict PrintableString set (no `*`, no `&`), UTF8String (tag `0c`)
//!    otherwise, with a DER length. The original string type is not kept: the IA5String
//!    emailAddress `a@b` prints as `1.2.840.113549.1.9.1=#0c03614062`.
//!
//! An empty subject prints as the empty string.

use std::fmt::Write as _;

use crate::error::IdentityError;

/// The subject text grpc-go matches gRFC A43 principals against: Go's `pkix.Name.String()` of
/// the name as `x509.ParseCertificate` reads it (the module documentation lists the rules).
/// `name_der` is the DER of the Name, as [`subject_der`] finds it in a certificate.
///
/// The result is `CN=payments,O=zt-grpc` for a certificate made with
/// `-subj /CN=payments/O=zt-grpc` **and** for one made with `-subj /O=zt-grpc/CN=payments`: Go
/// orders attributes by type, not as the certificate lists them. This is not RFC 4514 (see
/// [`crate::rfc4514`] for that form).
///
/// Fails, as Go's certificate parser does, when the DER is not a Name Go reads, an attribute
/// value is not a string Go can decode or an attribute type is not an OID Go can read.
pub fn pkix_name_string(name_der: &[u8]) -> Result<String, IdentityError> {
    let mut others: Vec<(String, String)> = Vec::new();
    let mut lists: [Vec<String>; 7] = Default::default();
    let mut common_name = String::new();
    let mut serial_number = String::new();
    for (oid, tag, value) in go_attributes(name_der)? {
        let value = go_string(tag, value)
            .map_err(|reason| malformed(format!("attribute {}: {reason}", dotted(&oid))))?;
        match known_type(&oid) {
            Some(Known::CommonName) => common_name = value,
            Some(Known::SerialNumber) => serial_number = value,
            Some(Known::Listed(index)) => lists[index].push(value),
            None => others.push((dotted(&oid), value)),
        }
    }

    // Go's sequence is: others, then the listed types in LISTED order, CN, SERIALNUMBER; it
    // prints that sequence backwards.
    let mut out = String::new();
    let next_rdn = |out: &mut String| {
        if !out.is_empty() {
            out.push(',');
        }
    };
    if !serial_number.is_empty() {
        next_rdn(&mut out);
        push_known(&mut out, "SERIALNUMBER", &serial_number);
    }
    if !common_name.is_empty() {
        next_rdn(&mut out);
        push_known(&mut out, "CN", &common_name);
    }
    for (index, values) in lists.iter().enumerate().rev() {
        if values.is_empty() {
            continue;
        }
        next_rdn(&mut out);
        for (j, value) in values.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_known(&mut out, LISTED[index], value);
        }
    }
    for (oid, value) in others.iter().rev() {
        next_rdn(&mut out);
        out.push_str(oid);
        out.push_str("=#");
        for byte in marshal_string(value) {
            let _ = write!(out, "{byte:02x}");
        }
    }
    Ok(out)
}

/// The known types Go keeps every value of, in the order `Name.ToRDNSequence` emits them, with
/// the `2.5.4.x` arc of each.
const LISTED: [&str; 7] = ["C", "ST", "L", "STREET", "POSTALCODE", "O", "OU"];
const LISTED_ARCS: [u64; 7] = [6, 8, 7, 9, 17, 10, 11];

enum Known {
    CommonName,
    SerialNumber,
    Listed(usize),
}

/// Go's test in `FillFromRDNSequence`: exactly four arcs `2.5.4.x`.
fn known_type(oid: &[u64]) -> Option<Known> {
    let [2, 5, 4, arc] = *oid else {
        return None;
    };
    match arc {
        3 => Some(Known::CommonName),
        5 => Some(Known::SerialNumber),
        _ => LISTED_ARCS
            .iter()
            .position(|&a| a == arc)
            .map(Known::Listed),
    }
}

/// `NAME=value`, escaped as `RDNSequence.String` does (positions are byte offsets).
fn push_known(out: &mut String, type_name: &str, value: &str) {
    out.push_str(type_name);
    out.push('=');
    let last = value.len().saturating_sub(1);
    for (at, c) in value.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => at == 0 || at == last,
            '#' => at == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
}

/// What Go's `asn1.Marshal` writes for a string value without an explicit type.
fn marshal_string(value: &str) -> Vec<u8> {
    let strictly_printable = value.bytes().all(|b| is_printable(b, false));
    let tag = if strictly_printable { 0x13 } else { 0x0c };
    let mut der = vec![tag];
    let len = value.len();
    if len < 0x80 {
        // Fits in the short form: the cast cannot truncate.
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        der.push(0x80 | (bytes.len() - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(value.as_bytes());
    der
}

/// The ASN.1 PrintableString set; `lenient` adds the `*` and `&` Go's parser tolerates (its
/// marshaller does not).
fn is_printable(b: u8, lenient: bool) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b' ' | b':' | b'=' | b'?'
        )
        || (lenient && matches!(b, b'*' | b'&'))
}

/// Decodes an attribute value as Go's `parseASN1String` (Go 1.25 and later) does. `tag` is
/// the whole identifier octet, as Go compares it: only primitive universal string types pass.
fn go_string(tag: u8, data: &[u8]) -> Result<String, &'static str> {
    let ascii = |ok: fn(u8) -> bool, err: &'static str| {
        if data.iter().all(|&b| ok(b)) {
            // Every byte is ASCII, so this is valid UTF-8.
            Ok(data.iter().map(|&b| char::from(b)).collect())
        } else {
            Err(err)
        }
    };
    match tag {
        PRINTABLE_STRING => ascii(|b| is_printable(b, true), "invalid PrintableString"),
        IA5_STRING => ascii(|b| b.is_ascii(), "invalid IA5String"),
        NUMERIC_STRING => ascii(|b| b.is_ascii_digit() || b == b' ', "invalid NumericString"),
        UTF8_STRING => std::str::from_utf8(data)
            .map(str::to_owned)
            .map_err(|_| "invalid UTF-8 string"),
        // T61String, read as Latin-1: every byte is the code point of the same value.
        T61_STRING => Ok(data.iter().map(|&b| char::from(b)).collect()),
        BMP_STRING => {
            if !data.len().is_multiple_of(2) {
                return Err("invalid BMPString");
            }
            let data = data.strip_suffix(&[0, 0]).unwrap_or(data);
            data.chunks_exact(2)
                .map(|unit| {
                    let point = u16::from_be_bytes([unit[0], unit[1]]);
                    let refused = matches!(point, 0xfffe | 0xffff | 0xfdd0..=0xfdef);
                    match char::from_u32(u32::from(point)) {
                        Some(c) if !refused => Ok(c),
                        // None: a surrogate, which UCS-2 does not have.
                        _ => Err("invalid BMPString"),
                    }
                })
                .collect()
        }
        _ => Err("unsupported string type"),
    }
}

/// The DER of the subject Name in a DER `TBSCertificate` (RFC 5280 section 4.1), or `None` when
/// the structure up to the subject is not DER Go would read.
///
/// Read here rather than taken from x509-parser's `X509Name`: that parser stops, without an
/// error, at an empty RDN SET and drops every attribute after it, where Go reads on.
pub fn subject_der(tbs_der: &[u8]) -> Option<&[u8]> {
    let mut tbs = Der(Der(tbs_der).expect(0x30)?);
    if tbs.0.first() == Some(&0xa0) {
        tbs.read()?; // version
    }
    tbs.expect(0x02)?; // serialNumber
    tbs.expect(0x30)?; // signature
    tbs.expect(0x30)?; // issuer
    tbs.expect(0x30)?; // validity
    let before = tbs.0;
    tbs.expect(0x30)?; // subject
    before.get(..before.len() - tbs.0.len())
}

const UTF8_STRING: u8 = 0x0c;
const NUMERIC_STRING: u8 = 0x12;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const BMP_STRING: u8 = 0x1e;

/// An attribute as Go's `parseName` reads it: the OID's arcs, the value's identifier octet and
/// its content.
type Attribute<'a> = (Vec<u64>, u8, &'a [u8]);

/// Every attribute of a DER Name, in order, as Go's `parseName` reads them: the RDN structure
/// does not matter to `Name.String()`, so it is flattened here. An empty RDN SET is accepted
/// (and contributes nothing), as Go accepts it.
fn go_attributes(name: &[u8]) -> Result<Vec<Attribute<'_>>, IdentityError> {
    let invalid = |what: &str| malformed(format!("invalid RDNSequence: {what}"));
    let mut rdns = Der(name);
    let mut rdns = Der(rdns.expect(0x30).ok_or_else(|| invalid("not a SEQUENCE"))?);
    let mut attributes = Vec::new();
    while !rdns.0.is_empty() {
        let mut set = Der(rdns.expect(0x31).ok_or_else(|| invalid("not a SET"))?);
        while !set.0.is_empty() {
            let mut atv = Der(set
                .expect(0x30)
                .ok_or_else(|| invalid("invalid attribute"))?);
            let oid = atv
                .expect(0x06)
                .and_then(go_oid)
                .ok_or_else(|| invalid("invalid attribute type"))?;
            let (tag, value) = atv
                .read()
                .ok_or_else(|| invalid("invalid attribute value"))?;
            attributes.push((oid, tag, value));
        }
    }
    Ok(attributes)
}

/// A DER reader with the limits of Go's `cryptobyte`: low tag numbers only, definite lengths
/// in the fewest octets, at most four length octets.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element's identifier octet and content.
    fn read(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first & 0x80 == 0 {
            usize::from(first)
        } else {
            let octets = usize::from(first & 0x7f);
            if octets == 0 || octets > 4 || rest.len() < octets {
                return None;
            }
            let (len_bytes, tail) = rest.split_at(octets);
            rest = tail;
            let len = len_bytes
                .iter()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            if len < 0x80 || len_bytes[0] == 0 {
                return None;
            }
            usize::try_from(len).ok()?
        };
        if rest.len() < len {
            return None;
        }
        let (content, tail) = rest.split_at(len);
        self.0 = tail;
        Some((tag, content))
    }

    /// The next element's content, if its identifier octet is `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.read()? {
            (found, content) if found == tag => Some(content),
            _ => None,
        }
    }
}

/// An OID's arcs as Go's `cryptobyte.ReadASN1ObjectIdentifier` reads them: not empty, each
/// sub-identifier minimally encoded, at most five bytes and below 2^31. `None` when Go refuses.
fn go_oid(bytes: &[u8]) -> Option<Vec<u64>> {
    let mut arcs = Vec::with_capacity(bytes.len() + 1);
    let mut rest = bytes;
    let first = read_base128(&mut rest)?;
    if first < 80 {
        arcs.extend([first / 40, first % 40]);
    } else {
        arcs.extend([2, first - 80]);
    }
    while !rest.is_empty() {
        arcs.push(read_base128(&mut rest)?);
    }
    Some(arcs)
}

fn read_base128(rest: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for i in 0..5 {
        let (&byte, tail) = rest.split_first()?;
        if value >= 1 << (31 - 7) || (i == 0 && byte == 0x80) {
            return None;
        }
        *rest = tail;
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn dotted(arcs: &[u64]) -> String {
    let mut out = String::new();
    for (i, arc) in arcs.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let _ = write!(out, "{arc}");
    }
    out
}

fn malformed(reason: String) -> IdentityError {
    IdentityError::Malformed(format!(
        "subject: {reason} (Go's crypto/x509, and so grpc-go, refuses such a certificate)"
    ))
}

#[cfg(test)]
mod tests {
    //! Expected strings derived from Go's rules (module documentation), on names built byte by
    //! byte so that every string type and RDN shape can be written.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests: a panic is a failed assertion"
    )]

    use x509_parser::prelude::FromDer;
    use x509_parser::x509::X509Name;

    use super::*;

    const CN: &[u8] = &[0x55, 4, 3];
    const SERIAL: &[u8] = &[0x55, 4, 5];
    const C: &[u8] = &[0x55, 4, 6];
    const L: &[u8] = &[0x55, 4, 7];
    const ST: &[u8] = &[0x55, 4, 8];
    const STREET: &[u8] = &[0x55, 4, 9];
    const O: &[u8] = &[0x55, 4, 10];
    const OU: &[u8] = &[0x55, 4, 11];
    const TITLE: &[u8] = &[0x55, 4, 12];
    const POSTALCODE: &[u8] = &[0x55, 4, 17];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 1];
    const UID: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 1, 1];
    const DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 1, 25];

    const UTF8: u8 = 0x0c;
    const NUMERIC: u8 = 0x12;
    const PRINTABLE: u8 = 0x13;
    const T61: u8 = 0x14;
    const IA5: u8 = 0x16;
    const BMP: u8 = 0x1e;

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    /// One RDN: its attributes as (OID bytes, value tag, value bytes).
    type Rdn<'a> = &'a [(&'a [u8], u8, &'a [u8])];

    fn render(rdns: &[Rdn<'_>]) -> Result<String, IdentityError> {
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, value) in *rdn {
                let mut atv = tlv(0x06, oid);
                atv.extend(tlv(*tag, value));
                set.extend(tlv(0x30, &atv));
            }
            seq.extend(tlv(0x31, &set));
        }
        pkix_name_string(&tlv(0x30, &seq))
    }

    fn ok(rdns: &[Rdn<'_>]) -> String {
        render(rdns).unwrap()
    }

    fn utf8<'a>(oid: &'a [u8], value: &'a str) -> (&'a [u8], u8, &'a [u8]) {
        (oid, UTF8, value.as_bytes())
    }

    #[test]
    fn known_types_print_in_gos_fixed_order_not_the_certificates() {
        // The issue's example: -subj /CN=legacy-batch/O=bughunt.
        assert_eq!(
            ok(&[&[utf8(CN, "legacy-batch")], &[utf8(O, "bughunt")]]),
            "CN=legacy-batch,O=bughunt"
        );
        assert_eq!(
            ok(&[&[utf8(O, "bughunt")], &[utf8(CN, "legacy-batch")]]),
            "CN=legacy-batch,O=bughunt"
        );
        assert_eq!(
            ok(&[
                &[utf8(SERIAL, "42")],
                &[utf8(C, "DE")],
                &[utf8(CN, "x")],
                &[utf8(O, "o")],
                &[utf8(OU, "u")],
                &[utf8(L, "l")],
                &[utf8(ST, "s")],
                &[utf8(STREET, "st")],
                &[utf8(POSTALCODE, "12345")],
            ]),
            "SERIALNUMBER=42,CN=x,OU=u,O=o,POSTALCODE=12345,STREET=st,L=l,ST=s,C=DE"
        );
        assert_eq!(ok(&[]), "", "empty subject");
    }

    #[test]
    fn rdns_are_regrouped_by_type() {
        // A multi-valued RDN is split by type ...
        assert_eq!(ok(&[&[utf8(CN, "a"), utf8(O, "b")]]), "CN=a,O=b");
        assert_eq!(ok(&[&[utf8(O, "b"), utf8(CN, "a")]]), "CN=a,O=b");
        // ... and repeated values of a listed type share one RDN, in certificate order.
        assert_eq!(
            ok(&[&[utf8(O, "z")], &[utf8(OU, "a")], &[utf8(O, "y")]]),
            "OU=a,O=z+O=y"
        );
        assert_eq!(ok(&[&[utf8(OU, "a"), utf8(OU, "b")]]), "OU=a+OU=b");
        // Only the last CN and SERIALNUMBER count; an empty one is dropped, other empties stay.
        assert_eq!(
            ok(&[&[utf8(CN, "first")], &[utf8(CN, "second")]]),
            "CN=second"
        );
        assert_eq!(ok(&[&[utf8(CN, "first")], &[utf8(CN, "")]]), "");
        assert_eq!(
            ok(&[&[utf8(SERIAL, "1")], &[utf8(SERIAL, "2")]]),
            "SERIALNUMBER=2"
        );
        assert_eq!(ok(&[&[utf8(C, "")], &[utf8(O, "")]]), "O=,C=");
    }

    #[test]
    fn values_are_escaped_as_go_escapes_them() {
        assert_eq!(
            ok(&[&[utf8(CN, r#" #a,b+c"d\e<f>g;h=i "#)]]),
            r#"CN=\ #a\,b\+c\"d\\e\<f\>g\;h=i\ "#
        );
        assert_eq!(ok(&[&[utf8(CN, "#lead")]]), r"CN=\#lead");
        assert_eq!(ok(&[&[utf8(CN, "a b#")]]), "CN=a b#");
        assert_eq!(ok(&[&[utf8(CN, " ")]]), r"CN=\ ");
        assert_eq!(ok(&[&[utf8(CN, "  ")]]), r"CN=\ \ ");
        // Non-ASCII and control characters are kept as they are.
        assert_eq!(ok(&[&[utf8(CN, "Müller")]]), "CN=Müller");
        assert_eq!(ok(&[&[utf8(O, "日本 ")]]), r"O=日本\ ");
        assert_eq!(ok(&[&[utf8(CN, "a\nb\u{0}")]]), "CN=a\nb\u{0}");
    }

    #[test]
    fn other_types_print_as_oid_and_gos_re_encoding_in_hex_after_the_known_ones() {
        // IA5String emailAddress: '@' is not PrintableString, so Go re-encodes it as UTF8String.
        assert_eq!(
            ok(&[&[utf8(CN, "x")], &[(EMAIL, IA5, b"a@b")]]),
            "CN=x,1.2.840.113549.1.9.1=#0c03614062"
        );
        // Each in an RDN of its own, last first, after every known type wherever it stood.
        assert_eq!(
            ok(&[
                &[(DC, IA5, b"com")],
                &[(DC, IA5, b"example"), (UID, UTF8, b"u1")],
                &[utf8(CN, "x")],
            ]),
            "CN=x,0.9.2342.19200300.100.1.1=#13027531,\
             0.9.2342.19200300.100.1.25=#13076578616d706c65,\
             0.9.2342.19200300.100.1.25=#1303636f6d"
        );
        // An unnamed 2.5.4 type; '*' and '&' are read but not written as PrintableString.
        assert_eq!(ok(&[&[(TITLE, PRINTABLE, b"a*b")]]), "2.5.4.12=#0c03612a62");
        assert_eq!(
            ok(&[&[(TITLE, UTF8, "é".as_bytes())]]),
            "2.5.4.12=#0c02c3a9"
        );
        assert_eq!(ok(&[&[(TITLE, UTF8, b"")]]), "2.5.4.12=#1300");
        let long = "a".repeat(200);
        assert_eq!(
            ok(&[&[(TITLE, UTF8, long.as_bytes())]]),
            format!("2.5.4.12=#1381c8{}", "61".repeat(200))
        );
        // The largest arc Go reads (2^31 - 1).
        assert_eq!(
            ok(&[&[(&[0x55, 4, 0x87, 0xff, 0xff, 0xff, 0x7f], PRINTABLE, b"v")]]),
            "2.5.4.2147483647=#130176"
        );
    }

    #[test]
    fn every_string_type_go_reads_is_decoded_as_go_1_25_does() {
        assert_eq!(ok(&[&[(CN, PRINTABLE, b"*.a&b")]]), "CN=*.a&b");
        assert_eq!(ok(&[&[(CN, IA5, b"a@b_c")]]), "CN=a@b_c");
        assert_eq!(ok(&[&[(SERIAL, NUMERIC, b"12 3")]]), "SERIALNUMBER=12 3");
        assert_eq!(ok(&[&[(CN, T61, b"M\xfcller")]]), "CN=Müller", "Latin-1");
        assert_eq!(ok(&[&[(CN, BMP, &[0, b'M', 0, 0xfc])]]), "CN=Mü");
        assert_eq!(
            ok(&[&[(CN, BMP, &[0x65, 0xe5, 0, 0])]]),
            "CN=日",
            "terminator dropped"
        );
        assert_eq!(ok(&[&[(CN, BMP, &[0, 0])]]), "");
    }

    #[test]
    fn values_go_refuses_refuse_the_name() {
        let refused: &[(u8, &[u8])] = &[
            (UTF8, b"\xff"),
            (UTF8, b"\xed\xa0\x80"), // a UTF-8 encoded surrogate
            (PRINTABLE, b"a@b"),
            (PRINTABLE, b"a_b"),
            (IA5, b"\xe9"),
            (NUMERIC, b"1a"),
            (BMP, &[0, 0x41, 0]),          // odd length
            (BMP, &[0xd8, 0x3d, 0xde, 0]), // a surrogate pair: UCS-2 has none
            (BMP, &[0xff, 0xfe]),
            (BMP, &[0xfd, 0xd0]),
            (0x1c, &[0, 0, 0, 0x41]), // UniversalString
            (0x1a, b"a"),             // VisibleString
            (0x1b, b"a"),             // GeneralString
            (0x02, &[1]),             // INTEGER
            (0x04, b"a"),             // OCTET STRING
            (0x80, b"a"),             // context-specific
        ];
        for (tag, value) in refused {
            let err = render(&[&[(CN, *tag, value)]]).unwrap_err();
            assert!(
                matches!(&err, IdentityError::Malformed(m) if m.contains("2.5.4.3")),
                "tag {tag:#x} {value:?}: {err}"
            );
            // Also when the type is one Go would print as hex.
            assert!(render(&[&[(EMAIL, *tag, value)]]).is_err(), "{tag:#x}");
        }
        // OIDs Go's parser refuses: an arc of 2^31, a non-minimal arc.
        for oid in [
            &[0x55, 4, 0x88, 0x80, 0x80, 0x80, 0x00][..],
            &[0x55, 4, 0x80, 0x03],
        ] {
            assert!(
                matches!(
                    render(&[&[(oid, UTF8, b"v")]]),
                    Err(IdentityError::Malformed(_))
                ),
                "{oid:x?}"
            );
        }
    }

    #[test]
    fn the_der_is_read_as_go_reads_it() {
        // An empty RDN SET: x509-parser's RDN list ends there, Go reads on.
        let der = [
            0x30, 0x1a, 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 4, 3, UTF8, 1, b'a', 0x31, 0x00,
            0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 4, 10, UTF8, 1, b'e',
        ];
        assert_eq!(pkix_name_string(&der).unwrap(), "CN=a,O=e");
        // x509-parser cuts the name there; the subject read from the certificate is whole.
        let (_, cut) = X509Name::from_der(&der).unwrap();
        assert_eq!(cut.iter_attributes().count(), 1);

        let atv = |value: &[u8]| {
            let mut atv = vec![0x30, (5 + value.len()) as u8, 0x06, 0x03, 0x55, 4, 3];
            atv.extend_from_slice(value);
            tlv(0x30, &tlv(0x31, &atv))
        };
        assert!(go_attributes(&atv(&[UTF8, 1, b'a'])).is_ok());
        for (why, value) in [
            ("long form for a short length", &[UTF8, 0x81, 1, b'a'][..]),
            ("a length with a leading zero", &[UTF8, 0x82, 0, 1, b'a']),
            ("a high tag number", &[0x1f, 0x20, 1, b'a']),
            ("an indefinite length", &[UTF8, 0x80, b'a', 0, 0]),
            ("a truncated value", &[UTF8, 2, b'a']),
        ] {
            assert!(go_attributes(&atv(value)).is_err(), "{why}");
        }
        // A SEQUENCE where the RDN SET belongs.
        assert!(go_attributes(&tlv(0x30, &tlv(0x30, &[]))).is_err());
        assert_eq!(go_attributes(&tlv(0x30, &tlv(0x31, &[]))).unwrap().len(), 0);
    }

    #[test]
    fn oids_are_read_as_go_reads_them() {
        assert_eq!(go_oid(&[0x55, 4, 3]), Some(vec![2, 5, 4, 3]));
        assert_eq!(go_oid(&[0x27]), Some(vec![0, 39]));
        assert_eq!(go_oid(&[0x88, 0x37, 1]), Some(vec![2, 999, 1]));
        assert_eq!(go_oid(&[]), None);
        assert_eq!(go_oid(&[0x55, 0x84]), None, "truncated");
        assert_eq!(
            go_oid(&[0x55, 0x81, 0x80, 0x80, 0x80, 0x80, 0]),
            None,
            "six bytes"
        );
    }
}
