//! Where a PEM file is broken, in words.
//!
//! The PEM parser the project uses (rustls-pki-types) says what went wrong in its own terms
//! (`base64 decode error: InvalidCharacter(33)`), without a line. Every crate that reads PEM
//! (keystores, truststores, CRLs, the CA's files) reports instead the line, the column and the
//! block, found by [`pem_problem`]: an operator opens the file at that line and sees it.

use std::fmt::Write as _;

/// A block being read: its position among the file's blocks, its label and first line.
struct Block<'a> {
    number: usize,
    label: &'a str,
    begin: usize,
    /// Base64 characters seen so far (whitespace excluded).
    chars: usize,
    /// The line of the first `=` (padding), if any: only padding may follow it.
    padding: Option<usize>,
}

impl Block<'_> {
    fn name(&self) -> String {
        format!(
            "PEM block {}, {}, begins on line {}",
            self.number, self.label, self.begin
        )
    }
}

/// The first thing wrong with the PEM text `pem`, as one sentence naming the line (from 1),
/// the column for a bad character, and the block (its number in the file, from 1, its label
/// and the line of its `BEGIN`). `None` when no problem is found here (the caller keeps the
/// parser's own message).
///
/// Text outside blocks is ignored, as PEM parsers do.
pub fn pem_problem(pem: &[u8]) -> Option<String> {
    let mut block: Option<Block<'_>> = None;
    let mut blocks = 0;
    let mut last = 0;
    for (index, raw) in pem.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        last = number;
        let Ok(line) = std::str::from_utf8(raw) else {
            if let Some(open) = &block {
                return Some(format!(
                    "line {number}: not text (invalid UTF-8) ({})",
                    open.name()
                ));
            }
            continue;
        };
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("-----BEGIN ") {
            if let Some(open) = &block {
                return Some(format!(
                    "line {number}: a new BEGIN line before the END of the block before ({})",
                    open.name()
                ));
            }
            let Some(label) = rest.strip_suffix("-----") else {
                return Some(format!(
                    "line {number}: malformed BEGIN line (expected \"-----BEGIN LABEL-----\")"
                ));
            };
            blocks += 1;
            block = Some(Block {
                number: blocks,
                label,
                begin: number,
                chars: 0,
                padding: None,
            });
        } else if let Some(rest) = line.strip_prefix("-----END ") {
            let Some(open) = block.take() else {
                continue;
            };
            let label = rest.strip_suffix("-----").unwrap_or(rest);
            if label != open.label {
                return Some(format!(
                    "line {number}: \"END {label}\" does not close \"BEGIN {}\" ({})",
                    open.label,
                    open.name()
                ));
            }
            if open.chars % 4 != 0 {
                return Some(format!(
                    "lines {}-{number}: the base64 text is cut short ({} characters, not a \
                     multiple of 4) ({})",
                    open.begin + 1,
                    open.chars,
                    open.name()
                ));
            }
        } else if let Some(open) = &mut block {
            if let Some((name, _)) = line.split_once(':') {
                return Some(format!(
                    "line {number}: PEM header \"{name}\" (an encrypted key, or an old \
                     OpenSSL format), which is not supported: use an unencrypted PKCS#8 key \
                     ({})",
                    open.name()
                ));
            }
            for (column, c) in line.chars().enumerate() {
                let column = column + 1;
                let bad = |what: &str| {
                    let mut text = format!("line {number}, column {column}: ");
                    if c.is_ascii_graphic() {
                        let _ = write!(text, "'{c}'");
                    } else {
                        let _ = write!(text, "U+{:04X}", u32::from(c));
                    }
                    let _ = write!(text, " {what} ({})", open.name());
                    Some(text)
                };
                match c {
                    ' ' | '\t' => {}
                    '=' => {
                        open.chars += 1;
                        open.padding.get_or_insert(number);
                    }
                    'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' => {
                        if open.padding.is_some() {
                            return bad("follows the '=' padding, which ends the base64 text");
                        }
                        open.chars += 1;
                    }
                    _ => return bad("is not a base64 character"),
                }
            }
        }
    }
    block.map(|open| {
        format!(
            "line {last}: the file ends before \"-----END {}-----\" ({})",
            open.label,
            open.name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::pem_problem;

    const GOOD: &str =
        "text before\n-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_good_file_has_no_problem() {
        assert_eq!(pem_problem(GOOD.as_bytes()), None);
    }

    #[test]
    fn each_problem_names_its_line_and_block() {
        let cases = [
            (
                GOOD.replace("REVG", "RE!G"),
                "line 4, column 3: '!' is not a base64 character (PEM block 1, CERTIFICATE, \
                 begins on line 2)",
            ),
            (
                format!("{GOOD}{}", GOOD.replace("QUJD", "QUJ")),
                "lines 8-10: the base64 text is cut short (7 characters, not a multiple of 4) \
                 (PEM block 2, CERTIFICATE, begins on line 7)",
            ),
            (
                GOOD.replace("-----END CERTIFICATE-----\n", ""),
                "line 5: the file ends before \"-----END CERTIFICATE-----\" (PEM block 1, \
                 CERTIFICATE, begins on line 2)",
            ),
            (
                GOOD.replace("END CERTIFICATE", "END PRIVATE KEY"),
                "line 5: \"END PRIVATE KEY\" does not close \"BEGIN CERTIFICATE\" (PEM block 1, \
                 CERTIFICATE, begins on line 2)",
            ),
            (
                GOOD.replace("QUJD", "QU==\nQUJD"),
                "line 4, column 1: 'Q' follows the '=' padding, which ends the base64 text \
                 (PEM block 1, CERTIFICATE, begins on line 2)",
            ),
            (
                GOOD.replace("QUJD", "Proc-Type: 4,ENCRYPTED"),
                "line 3: PEM header \"Proc-Type\" (an encrypted key, or an old OpenSSL \
                 format), which is not supported: use an unencrypted PKCS#8 key (PEM block 1, \
                 CERTIFICATE, begins on line 2)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                pem_problem(text.as_bytes()).as_deref(),
                Some(expected),
                "{text}"
            );
        }
    }
}
