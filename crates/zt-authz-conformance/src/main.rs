//! `zt-a43-conformance`: runs gRPC C++'s A43 engine beside ours on the same inputs and reports
//! every disagreement, minimised and categorised. See `conformance/a43/README.md`; run it
//! through `scripts/a43-conformance.sh`, which builds the C++ side.

mod generate;
mod grpc_side;
mod load;
mod model;
mod ours;
mod pki;
mod run;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::grpc_side::{CppServer, Load, Verdict};
use crate::pki::Pki;

/// Categories documented as deliberate differences (README "Writing a policy" and
/// conformance/a43/README.md); anything else fails the run.
const DELIBERATE: &[&str] = &[
    "two-sided-pattern (*x*)",
    "binary-header (-bin values)",
    "unidentified-caller (not an X509-SVID: ours UNAUTHENTICATED)",
    "spiffe-principal (SPIFFE-aware matching)",
    "uppercase-header-key",
    "content-type (gRPC C++'s engine never sees it)",
    "subject-rendering",
    "deny-header-repeated (any single value)",
];

#[derive(Debug, Parser)]
#[command(about = "Differential test of zt-authz against gRPC C++'s A43 engine")]
struct Args {
    /// The C++ server (built by scripts/a43-conformance.sh).
    #[arg(
        long,
        env = "A43_SERVER",
        default_value = "target/a43/build/a43_server"
    )]
    server: PathBuf,
    /// Seed of the generator.
    #[arg(long, env = "A43_SEED", default_value_t = 43)]
    seed: u64,
    /// Policies to generate.
    #[arg(long, env = "A43_CASES", default_value_t = 3000)]
    cases: usize,
    /// Caller certificates to make.
    #[arg(long, env = "A43_IDENTITIES", default_value_t = 48)]
    identities: usize,
    /// Callers (connections) per policy.
    #[arg(long, env = "A43_CALLERS", default_value_t = 4)]
    callers: usize,
    /// Requests per caller per policy.
    #[arg(long, env = "A43_REQUESTS", default_value_t = 12)]
    requests: usize,
    /// Disagreements minimised per category.
    #[arg(long, env = "A43_SHRINK", default_value_t = 3)]
    shrink: usize,
    /// Seconds allowed for minimising.
    #[arg(long, env = "A43_SHRINK_SECS", default_value_t = 120)]
    shrink_secs: u64,
    /// Report only: exit 0 even when a disagreement is outside the deliberate categories.
    #[arg(long, env = "A43_REPORT_ONLY")]
    report_only: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let pki = Pki::new(dir.path())?;
    let mut server = CppServer::start(&args.server, &pki)?;
    let transport = ours::transport_headers().await?;

    // Callers, and how gRPC's TLS stack sees each (an allow-all policy echoes its view).
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let mut identities = Vec::new();
    for (i, spec) in generate::cert_specs(&mut rng, args.identities)
        .into_iter()
        .enumerate()
    {
        identities.push(pki.issue(&format!("caller{i}"), spec)?);
    }
    let probe = r#"{"name":"probe","allow_rules":[{"name":"all"}]}"#;
    let Load::Accepted(port) = server.serve(probe).await? else {
        anyhow::bail!("gRPC refused the allow-all probe policy");
    };
    for identity in &mut identities {
        let channel = grpc_side::connect(port, identity, &pki)?;
        let request = model::RequestSpec {
            path: "/probe.v1.Probe/Peer".into(),
            metadata: Vec::new(),
            content_type: None,
        };
        match grpc_side::call(channel, &request).await {
            Verdict::Allowed(peer) => identity.grpc = peer,
            other => anyhow::bail!("probe of {} failed: {other:?}", identity.label),
        }
    }

    let load = load::compare(&mut server).await?;
    let budget = run::Budget {
        seed: args.seed,
        policies: args.cases,
        callers_per_policy: args.callers,
        requests_per_caller: args.requests,
        shrink_per_category: args.shrink,
        shrink_time: Duration::from_secs(args.shrink_secs),
    };
    let decisions = run::compare(&mut server, &pki, &identities, &transport, &budget)
        .await
        .context("decision comparison")?;

    let unexpected = print_report(&args, &identities, &load, &decisions, started.elapsed());
    if unexpected > 0 && !args.report_only {
        anyhow::bail!("{unexpected} disagreement(s) outside the deliberate categories");
    }
    Ok(())
}

fn print_report(
    args: &Args,
    identities: &[pki::Identity],
    load: &load::LoadReport,
    d: &run::DecisionReport,
    elapsed: Duration,
) -> usize {
    let mut unexpected = 0;
    println!(
        "== A43 conformance: zt-authz vs gRPC C++ 1.51 (seed {})",
        args.seed
    );
    let svids = identities.iter().filter(|i| i.ours.is_ok()).count();
    println!(
        "callers: {} certificates ({} X509-SVIDs, {} not)",
        identities.len(),
        svids,
        identities.len() - svids
    );
    let subjects_differ = identities
        .iter()
        .filter(|i| i.ours.as_ref().is_ok_and(|p| p.subject() != i.grpc.subject))
        .count();
    println!("subjects rendered differently by the two sides: {subjects_differ} of {svids}");
    for identity in identities
        .iter()
        .filter(|i| i.ours.as_ref().is_ok_and(|p| p.subject() != i.grpc.subject))
        .take(3)
    {
        if let Ok(peer) = &identity.ours {
            println!(
                "  e.g. gRPC: {:?}\n       ours: {:?}",
                identity.grpc.subject,
                peer.subject()
            );
        }
    }

    println!(
        "\n-- policy loading: {} documents, {} agreements, {} disagreements",
        load.documents,
        load.agreements,
        load.diffs.len()
    );
    for diff in &load.diffs {
        let tag = if diff.ours_refused {
            "stricter"
        } else {
            unexpected += 1;
            "LOOSER  "
        };
        println!("  [{tag}] {}: {}", diff.mutation, diff.detail);
    }

    println!(
        "\n-- decisions: {} policies ({} loaded by both, {} refused by both, {} by one side)",
        d.policies,
        d.both_loaded,
        d.both_refused,
        d.load_mismatches.len()
    );
    let mut by_category: std::collections::BTreeMap<&str, (usize, &run::LoadMismatch)> =
        std::collections::BTreeMap::new();
    for m in &d.load_mismatches {
        by_category.entry(&m.category).or_insert((0, m)).0 += 1;
    }
    for (category, (count, example)) in &by_category {
        if category.starts_with("gRPC refuses") {
            unexpected += count;
        }
        println!(
            "  load [{count:>4}] {category}\n         e.g. {}\n         {}",
            example.policy, example.detail
        );
    }
    let disagreements: usize = d.categories.values().map(|c| c.count).sum();
    println!(
        "{} decisions: {} agreements ({} allowed by both), {} disagreements, {} errors",
        d.decisions,
        d.agreements,
        d.allowed_by_both,
        disagreements,
        d.errors.len()
    );
    unexpected += d.errors.len();
    for error in d.errors.iter().take(5) {
        println!("  error: {error}");
    }
    for (category, c) in &d.categories {
        let deliberate = DELIBERATE.contains(&category.as_str());
        if !deliberate {
            unexpected += c.count;
        }
        let tag = if deliberate {
            "deliberate"
        } else {
            "UNEXPECTED"
        };
        println!(
            "\n  [{:>5}] {category} ({tag}; {} counted unminimised)",
            c.count, c.unminimised
        );
        for case in &c.examples {
            let identity = &identities[case.identity];
            println!("    minimal policy: {}", case.policy.to_json());
            println!(
                "    caller: URI SANs {:?}, DNS SANs {:?}",
                identity.spec.uris, identity.spec.dns
            );
            println!("      gRPC subject: {:?}", identity.grpc.subject);
            match &identity.ours {
                Ok(peer) => println!("      our subject:  {:?}", peer.subject()),
                Err(e) => println!("      ours: no identity ({e})"),
            }
            println!("    request: {}", case.request.describe());
            let grpc = match &case.grpc {
                Verdict::Allowed(_) => "allowed",
                Verdict::Denied => "denied",
                Verdict::Error(_) => "error",
            };
            println!("    gRPC: {grpc}; ours: {:?}\n", case.ours);
        }
    }
    println!(
        "\nminimising: {} extra evaluations; total time {:.1} s",
        d.shrink_evaluations,
        elapsed.as_secs_f64()
    );
    println!(
        "a43-conformance: {} policies, {} decisions, {} agreements, {} disagreements ({} unexpected)",
        d.policies, d.decisions, d.agreements, disagreements, unexpected
    );
    unexpected
}
