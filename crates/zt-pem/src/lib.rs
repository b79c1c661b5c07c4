//! PEM files as people write them (RFC 7468), read strictly: every block is used or refused.
//!
//! General PEM parsers skip what they do not recognise. For a truststore that means trusting
//! part of a file in silence: a CA written as `BEGIN TRUSTED CERTIFICATE` (`openssl x509
//! -trustout`), or two files glued by `cat` where the first lacks its final newline
//! (`-----END CERTIFICATE----------BEGIN CERTIFICATE-----`), vanishes and the service starts
//! with one CA fewer. This reader finds every `BEGIN`/`END` marker wherever it is in the text,
//! and each block is either used or an error that names it:
//!
//! ```
//! let glued = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE----------BEGIN CERTIFICATE-----\nMAMCAQI=\n-----END CERTIFICATE-----\n";
//! let blocks = zt_pem::blocks(glued.as_bytes()).unwrap();
//! assert_eq!(blocks.len(), 2);
//! assert_eq!(blocks[1].line, 3);
//!
//! let broken = "-----BEGIN CERTIFICATE-----\nMAMC!QE=\n-----END CERTIFICATE-----\n";
//! let err = zt_pem::blocks(broken.as_bytes()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "PEM block 1 (CERTIFICATE, line 1): line 2, column 5: '!' is not a base64 character"
//! );
//! ```
//!
//! - [`certificates`]: `CERTIFICATE` and `TRUSTED CERTIFICATE` blocks (the latter's OpenSSL
//!   trust settings are read: one that *rejects* a use is refused, since this reader cannot
//!   honour it). Private key blocks are skipped (a combined cert-and-key file is common); any
//!   other label is an error. A file with no `BEGIN` at all is read as one DER certificate.
//! - [`private_key`]: exactly one key, PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or
//!   PKCS#1 (`RSA PRIVATE KEY`); an encrypted key is refused as such, not as "no key found".
//! - [`crls`]: `X509 CRL` blocks, or one DER CRL.
//!
//! Text outside blocks is ignored, as RFC 7468 section 2 allows (explanatory text).
//! Pure: the caller reads the file and adds its name to the error.

use base64::Engine as _;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs1KeyDer,
    PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

/// One PEM block: its label and decoded bytes, and where it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The label between `BEGIN ` and `-----`, e.g. `CERTIFICATE`.
    pub label: String,
    /// The decoded base64 body.
    pub der: Vec<u8>,
    /// Its position among the file's blocks, from 1.
    pub number: usize,
    /// The line of its `BEGIN` marker, from 1.
    pub line: usize,
}

impl Block {
    fn at(&self) -> BlockAt {
        BlockAt {
            number: self.number,
            label: self.label.clone(),
            line: self.line,
        }
    }
}

/// Which block an error is about, as a message names it: `PEM block 2 (CERTIFICATE, line 14)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAt {
    /// Position among the file's blocks, from 1.
    pub number: usize,
    /// The block's label.
    pub label: String,
    /// The line of its `BEGIN` marker, from 1.
    pub line: usize,
}

impl std::fmt::Display for BlockAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PEM block {} ({}, line {})",
            self.number, self.label, self.line
        )
    }
}

/// Why a PEM file was refused. Every variant says where; the caller adds the file's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// A `BEGIN` marker whose `END` never comes (or comes after another `BEGIN`).
    #[error("{block}: no END line before {}", next.map_or("the end of the file".to_owned(), |line| format!("the next BEGIN on line {line}")))]
    Unterminated {
        /// The block.
        block: BlockAt,
        /// The line of the next `BEGIN`, if that is what came first.
        next: Option<usize>,
    },
    /// An `END` marker with no `BEGIN` before it.
    #[error("line {line}: an END line with no BEGIN before it")]
    EndWithoutBegin {
        /// The `END` marker's line.
        line: usize,
    },
    /// A marker that does not end in `-----`.
    #[error("line {line}: malformed BEGIN or END line")]
    MalformedMarker {
        /// The marker's line.
        line: usize,
    },
    /// `BEGIN X` closed by `END Y`.
    #[error("{block}: closed by \"END {end}\" on line {line}")]
    LabelMismatch {
        /// The block.
        block: BlockAt,
        /// The label of the `END` marker.
        end: String,
        /// Its line.
        line: usize,
    },
    /// A character in the body that base64 does not have.
    #[error("{block}: line {line}, column {column}: {character:?} is not a base64 character")]
    Base64Character {
        /// The block.
        block: BlockAt,
        /// Line, from 1.
        line: usize,
        /// Column, from 1, in characters.
        column: usize,
        /// The character.
        character: char,
    },
    /// A body that is not whole base64 (wrong length, padding in the middle).
    #[error("{block}: the base64 text is cut short or padded in the middle")]
    Base64Length {
        /// The block.
        block: BlockAt,
    },
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`), as OpenSSL writes for a legacy encrypted key.
    #[error(
        "{block}: encrypted private keys are not supported; decrypt it (openssl pkey -in KEY -out PLAIN) and protect the file with permissions instead"
    )]
    Encrypted {
        /// The block.
        block: BlockAt,
    },
    /// RFC 1421 headers other than encryption.
    #[error("{block}: line {line}: PEM headers are not supported")]
    Headers {
        /// The block.
        block: BlockAt,
        /// The header's line.
        line: usize,
    },
    /// A block this kind of file cannot hold (a `CERTIFICATE REQUEST` in a certificate file).
    #[error("{block}: a {expected} file cannot hold a {} block", block.label)]
    UnexpectedLabel {
        /// The block.
        block: BlockAt,
        /// What the file should hold: `certificate`, `private key`, `CRL`.
        expected: &'static str,
    },
    /// A body that is not one whole DER structure.
    #[error("{block}: {reason}")]
    Der {
        /// The block.
        block: BlockAt,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `TRUSTED CERTIFICATE` whose OpenSSL trust settings reject some use of the CA.
    #[error(
        "{block}: OpenSSL trust settings reject some uses of this certificate, which this reader cannot honour; export it without them (openssl x509 -in FILE -out PLAIN)"
    )]
    RejectedUses {
        /// The block.
        block: BlockAt,
    },
    /// No block of the kind wanted, and the file is not DER either.
    #[error("no {0} found (expected PEM \"BEGIN {1}\" blocks, or one DER structure)")]
    Nothing(&'static str, &'static str),
    /// More than one private key.
    #[error("{block}: a second private key (the first is {first}); keep one key per file")]
    SecondKey {
        /// The second key's block.
        block: BlockAt,
        /// The first key's block.
        first: BlockAt,
    },
}

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// Every PEM block of `text`, wherever its markers are (a marker need not start a line).
///
/// Errors: a `BEGIN` without its `END`, an `END` without a `BEGIN`, mismatched labels, a
/// character that is not base64 (with its line and column), a body of the wrong length, an
/// RFC 1421 header (an encrypted key). A file with no `BEGIN` has no blocks.
pub fn blocks(text: &[u8]) -> Result<Vec<Block>, PemError> {
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(begin) = find(text, BEGIN, at) {
        if let Some(stray) = find(&text[..begin], END, at) {
            return Err(PemError::EndWithoutBegin {
                line: line_of(text, stray),
            });
        }
        let (label, body_start) = marker(text, begin + BEGIN.len())?;
        let block = BlockAt {
            number: blocks.len() + 1,
            label: label.to_owned(),
            line: line_of(text, begin),
        };
        let end = find(text, END, body_start);
        let next_begin = find(text, BEGIN, body_start);
        let end = match (end, next_begin) {
            (Some(end), Some(next)) if next < end => {
                return Err(PemError::Unterminated {
                    block,
                    next: Some(line_of(text, next)),
                });
            }
            (Some(end), _) => end,
            (None, next) => {
                return Err(PemError::Unterminated {
                    block,
                    next: next.map(|next| line_of(text, next)),
                });
            }
        };
        let (end_label, after) = marker(text, end + END.len())?;
        if end_label != label {
            return Err(PemError::LabelMismatch {
                block,
                end: end_label.to_owned(),
                line: line_of(text, end),
            });
        }
        let der = decode_body(text, body_start, end, &block)?;
        blocks.push(Block {
            label: block.label,
            der,
            number: block.number,
            line: block.line,
        });
        at = after;
    }
    if let Some(stray) = find(text, END, at) {
        return Err(PemError::EndWithoutBegin {
            line: line_of(text, stray),
        });
    }
    Ok(blocks)
}

/// Every certificate of a certificate file, in file order (leaf first in a keystore).
///
/// `CERTIFICATE` and `TRUSTED CERTIFICATE` blocks are used; private key blocks (and
/// `EC PARAMETERS`) are skipped; any other block is an error. A text with no `BEGIN` at all is
/// read as one DER certificate. At least one certificate is required.
pub fn certificates(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    const NOTHING: PemError = PemError::Nothing("certificates", "CERTIFICATE");
    let blocks = blocks(text)?;
    if blocks.is_empty() {
        return der_element(text)
            .filter(|len| *len == text.len())
            .map(|_| vec![CertificateDer::from(text.to_vec())])
            .ok_or(NOTHING);
    }
    let mut certs = Vec::new();
    for block in blocks {
        match block.label.as_str() {
            "CERTIFICATE" => {
                whole_der(&block)?;
                certs.push(CertificateDer::from(block.der));
            }
            "TRUSTED CERTIFICATE" => certs.push(trusted_certificate(block)?),
            label if is_key_label(label) => {}
            _ => {
                return Err(PemError::UnexpectedLabel {
                    block: block.at(),
                    expected: "certificate",
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(NOTHING);
    }
    Ok(certs)
}

/// The one private key of a key file: PKCS#8, SEC1 or PKCS#1, by its label.
///
/// Certificate blocks and `EC PARAMETERS` (which `openssl ecparam -genkey` writes first) are
/// skipped; an `ENCRYPTED PRIVATE KEY` or a legacy encrypted key is refused as encrypted; a
/// second key is an error. A text with no `BEGIN` is read as one DER PKCS#8 key.
pub fn private_key(text: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    const NOTHING: PemError = PemError::Nothing(
        "private key",
        "PRIVATE KEY\", \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY",
    );
    let blocks = blocks(text)?;
    if blocks.is_empty() {
        return der_element(text)
            .filter(|len| *len == text.len())
            .map(|_| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(text.to_vec())))
            .ok_or(NOTHING);
    }
    let mut key: Option<(PrivateKeyDer<'static>, BlockAt)> = None;
    for block in blocks {
        let parsed = match block.label.as_str() {
            "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(whole_der(&block)?)),
            "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(whole_der(&block)?)),
            "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(whole_der(&block)?)),
            "ENCRYPTED PRIVATE KEY" => return Err(PemError::Encrypted { block: block.at() }),
            "EC PARAMETERS" | "CERTIFICATE" | "TRUSTED CERTIFICATE" => continue,
            _ => {
                return Err(PemError::UnexpectedLabel {
                    block: block.at(),
                    expected: "private key",
                });
            }
        };
        if let Some((_, first)) = &key {
            return Err(PemError::SecondKey {
                block: block.at(),
                first: first.clone(),
            });
        }
        key = Some((parsed, block.at()));
    }
    key.map(|(key, _)| key).ok_or(NOTHING)
}

/// Every CRL of a CRL file (`X509 CRL` blocks), or the one DER CRL of a file with no `BEGIN`.
pub fn crls(text: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    const NOTHING: PemError = PemError::Nothing("CRLs", "X509 CRL");
    let blocks = blocks(text)?;
    if blocks.is_empty() {
        return der_element(text)
            .filter(|len| *len == text.len())
            .map(|_| vec![CertificateRevocationListDer::from(text.to_vec())])
            .ok_or(NOTHING);
    }
    blocks
        .into_iter()
        .map(|block| match block.label.as_str() {
            "X509 CRL" => {
                whole_der(&block)?;
                Ok(CertificateRevocationListDer::from(block.der))
            }
            _ => Err(PemError::UnexpectedLabel {
                block: block.at(),
                expected: "CRL",
            }),
        })
        .collect()
}

fn is_key_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY") || label == "EC PARAMETERS"
}

/// The block's body, if it is exactly one DER element.
fn whole_der(block: &Block) -> Result<Vec<u8>, PemError> {
    match der_element(&block.der) {
        Some(len) if len == block.der.len() => Ok(block.der.clone()),
        Some(_) => Err(PemError::Der {
            block: block.at(),
            reason: "data after the end of the DER structure",
        }),
        None => Err(PemError::Der {
            block: block.at(),
            reason: "not a DER structure (the body is cut short or not ASN.1)",
        }),
    }
}

/// `TRUSTED CERTIFICATE`: the certificate, then OpenSSL's `X509_CERT_AUX`
/// (`SEQUENCE { trust SEQUENCE OF OID OPTIONAL, reject [0] SEQUENCE OF OID OPTIONAL, ... }`).
fn trusted_certificate(block: Block) -> Result<CertificateDer<'static>, PemError> {
    let not_der = |reason| PemError::Der {
        block: block.at(),
        reason,
    };
    let cert_len = der_element(&block.der)
        .ok_or_else(|| not_der("not a DER certificate (the body is cut short or not ASN.1)"))?;
    let aux = &block.der[cert_len..];
    if !aux.is_empty() {
        let aux_len =
            der_element(aux).ok_or_else(|| not_der("malformed OpenSSL trust settings"))?;
        if aux_len != aux.len() || aux.first() != Some(&0x30) {
            return Err(not_der("malformed OpenSSL trust settings"));
        }
        let mut members = &aux[header_len(aux).unwrap_or(aux.len())..];
        while !members.is_empty() {
            let len =
                der_element(members).ok_or_else(|| not_der("malformed OpenSSL trust settings"))?;
            // [0] IMPLICIT: the uses this certificate must never be trusted for.
            if members[0] == 0xa0 {
                return Err(PemError::RejectedUses { block: block.at() });
            }
            members = &members[len..];
        }
    }
    Ok(CertificateDer::from(block.der[..cert_len].to_vec()))
}

/// Splits the DER element at the start of `der` into its tag, its contents and the bytes
/// after it; `None` unless it is one whole definite-length element with a one-byte tag.
/// For callers that need a raw field of a structure their parser does not keep (an
/// `AlgorithmIdentifier` as rustls-webpki compares it).
pub fn der_split(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let total = der_element(der)?;
    let header = header_len(der)?;
    Some((*der.first()?, der.get(header..total)?, der.get(total..)?))
}

/// The length of the DER element at the start of `der` (header and contents), if whole.
/// Only definite lengths (DER); the tag must fit one byte (all the structures read here).
fn der_element(der: &[u8]) -> Option<usize> {
    let header = header_len(der)?;
    let len = match der.get(1)? {
        short @ 0..=0x7f => usize::from(*short),
        long => {
            let count = usize::from(long & 0x7f);
            der.get(2..2 + count)?
                .iter()
                .try_fold(0usize, |len, byte| {
                    len.checked_mul(256)?.checked_add(usize::from(*byte))
                })?
        }
    };
    let total = header.checked_add(len)?;
    (total <= der.len() && (der.first()? & 0x1f) != 0x1f).then_some(total)
}

/// The length of a DER element's tag and length bytes.
fn header_len(der: &[u8]) -> Option<usize> {
    match der.get(1)? {
        0..=0x7f => Some(2),
        0x80 => None, // indefinite length: BER, not DER
        long => {
            let count = usize::from(long & 0x7f);
            (count <= 8).then_some(2 + count)
        }
    }
}

/// Reads a marker's label from `start` up to `-----`; returns it and the offset after it.
fn marker(text: &[u8], start: usize) -> Result<(&str, usize), PemError> {
    let malformed = || PemError::MalformedMarker {
        line: line_of(text, start),
    };
    let rest = &text[start..];
    let close = find(rest, DASHES, 0).ok_or_else(malformed)?;
    let label = std::str::from_utf8(&rest[..close]).map_err(|_| malformed())?;
    // A label is printable ASCII on one line (RFC 7468 section 3).
    if label.is_empty()
        || !label
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'-')
    {
        return Err(malformed());
    }
    Ok((label, start + close + DASHES.len()))
}

/// Decodes the base64 body between `start` and `end`, reporting a bad character's position.
fn decode_body(
    text: &[u8],
    start: usize,
    end: usize,
    block: &BlockAt,
) -> Result<Vec<u8>, PemError> {
    let body = &text[start..end];
    let mut base64 = Vec::with_capacity(body.len());
    let mut offset = start;
    for line in body.split(|&b| b == b'\n') {
        if line.contains(&b':') {
            let header = String::from_utf8_lossy(line);
            return Err(
                if header.contains("ENCRYPTED") || header.starts_with("DEK-Info") {
                    PemError::Encrypted {
                        block: block.clone(),
                    }
                } else {
                    PemError::Headers {
                        block: block.clone(),
                        line: line_of(text, offset),
                    }
                },
            );
        }
        offset += line.len() + 1;
    }
    for (index, &byte) in body.iter().enumerate() {
        if byte.is_ascii_whitespace() {
            continue;
        }
        let valid = byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=');
        if !valid {
            let at = start + index;
            let line_start = text[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            return Err(PemError::Base64Character {
                block: block.clone(),
                line: line_of(text, at),
                column: String::from_utf8_lossy(&text[line_start..at])
                    .chars()
                    .count()
                    + 1,
                character: String::from_utf8_lossy(&text[at..(at + 4).min(text.len())])
                    .chars()
                    .next()
                    .unwrap_or('?'),
            });
        }
        base64.push(byte);
    }
    PEM_BASE64
        .decode(&base64)
        .map_err(|_| PemError::Base64Length {
            block: block.clone(),
        })
}

/// PEM's base64 (RFC 7468 section 3): the standard alphabet; padding as written.
const PEM_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

/// The line (from 1) of byte `offset`.
fn line_of(text: &[u8], offset: usize) -> usize {
    text[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
