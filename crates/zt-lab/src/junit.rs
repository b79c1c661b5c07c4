//! The report as JUnit XML, which CI systems (GitHub Actions test reporters, GitLab, Jenkins)
//! read: one `testsuite` per run, one `testcase` per case plus `control`.
//!
//! - BLOCKED: a passed testcase; what was seen is in `system-out`.
//! - NOT BLOCKED: a `failure` with what got through.
//! - INCONCLUSIVE and SKIPPED: `skipped`, with the reason (the exit code still fails the job
//!   on INCONCLUSIVE, see [`crate::catalogue::Report::exit_code`]).
//! - a failed control call: an `error` on the `control` testcase.
//!
//! Written with quick-xml, which escapes every attribute and text.

use std::io::Write;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::catalogue::{Report, Verdict};

/// Writes `report` as JUnit XML to `out`.
///
/// # Errors
/// The writer's I/O error.
pub fn write(report: &Report, out: impl Write) -> std::io::Result<()> {
    let mut xml = Writer::new_with_indent(out, b' ', 2);
    let failures = report.count("NOT BLOCKED");
    let skipped = report.count("INCONCLUSIVE") + report.count("SKIPPED");
    let errors = usize::from(report.control.is_err());
    let tests = report.findings.len() + 1;
    let suite_name = format!("zt-lab attack {}", report.target);
    let time = format!("{:.3}", report.took.as_secs_f64());
    let counts = [
        ("tests", tests.to_string()),
        ("failures", failures.to_string()),
        ("errors", errors.to_string()),
        ("skipped", skipped.to_string()),
        ("time", time),
    ];

    xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut suites = BytesStart::new("testsuites");
    suites.push_attribute(("name", suite_name.as_str()));
    for (k, v) in &counts {
        suites.push_attribute((*k, v.as_str()));
    }
    xml.write_event(Event::Start(suites))?;
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("name", suite_name.as_str()));
    for (k, v) in &counts {
        suite.push_attribute((*k, v.as_str()));
    }
    xml.write_event(Event::Start(suite))?;

    let class = "zt-lab.attack";
    match &report.control {
        Ok(how) => case(&mut xml, class, "control", 0.0, None, how)?,
        Err(why) => case(
            &mut xml,
            class,
            "control",
            0.0,
            Some((
                "error",
                "the target does not work for the legitimate keystore",
                why,
            )),
            why,
        )?,
    }
    for finding in &report.findings {
        let detail = finding.verdict.detail();
        let outcome = match &finding.verdict {
            Verdict::Blocked(_) => None,
            Verdict::NotBlocked(_) => Some(("failure", "NOT BLOCKED", detail)),
            Verdict::Inconclusive(_) => Some(("skipped", "INCONCLUSIVE", detail)),
            Verdict::Skipped(_) => Some(("skipped", "SKIPPED", detail)),
        };
        let line = format!("{}: {detail}", finding.verdict.label());
        case(
            &mut xml,
            class,
            &finding.name,
            finding.took.as_secs_f64(),
            outcome,
            &line,
        )?;
    }
    xml.write_event(Event::End(BytesEnd::new("testsuite")))?;
    xml.write_event(Event::End(BytesEnd::new("testsuites")))?;
    xml.get_mut().write_all(b"\n")
}

/// One `testcase`; `outcome` is `(element, message, text)` for a failure, error or skip.
fn case<W: Write>(
    xml: &mut Writer<W>,
    class: &str,
    name: &str,
    seconds: f64,
    outcome: Option<(&str, &str, &str)>,
    out: &str,
) -> std::io::Result<()> {
    let time = format!("{seconds:.3}");
    let mut start = BytesStart::new("testcase");
    start.push_attribute(("classname", class));
    start.push_attribute(("name", name));
    start.push_attribute(("time", time.as_str()));
    xml.write_event(Event::Start(start))?;
    if let Some((element, message, text)) = outcome {
        let mut tag = BytesStart::new(element);
        let message = format!("{message}: {text}");
        tag.push_attribute(("message", message.as_str()));
        if element == "skipped" {
            xml.write_event(Event::Empty(tag))?;
        } else {
            tag.push_attribute(("type", element));
            xml.write_event(Event::Start(tag))?;
            xml.write_event(Event::Text(BytesText::new(text)))?;
            xml.write_event(Event::End(BytesEnd::new(element)))?;
        }
    }
    xml.write_event(Event::Start(BytesStart::new("system-out")))?;
    xml.write_event(Event::Text(BytesText::new(out)))?;
    xml.write_event(Event::End(BytesEnd::new("system-out")))?;
    xml.write_event(Event::End(BytesEnd::new("testcase")))?;
    Ok(())
}
