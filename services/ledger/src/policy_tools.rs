//! `ledger policy check|coverage|explain`: the policy analysis of [`zt_authz`] run against the
//! methods the ledger serves, printed for people, with exit statuses for CI.

use std::path::{Path, PathBuf};

use zt_authz::{Decision, Policy, Request, Severity};
use zt_identity::TrustedDomains;

use crate::config::{Config, Expected, PolicyCommand};
use crate::error::Error;
use crate::server::served_methods;
use zt_server::load_policy;

/// Runs one policy command, printing its report. `Ok(false)`: the report found a problem.
pub fn run(config: &Config, command: &PolicyCommand) -> Result<bool, Error> {
    match command {
        PolicyCommand::Check {
            file,
            strict,
            descriptor_sets,
        } => {
            let (path, policy) = load(config, file.as_deref())?;
            let methods = methods(descriptor_sets)?;
            let findings = policy.check(&methods);
            for finding in &findings {
                println!("{finding}");
            }
            let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
            let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
            println!(
                "policy \"{}\" ({}): {errors} error(s), {warnings} warning(s), against {} served methods",
                policy.name(),
                path.display(),
                methods.len()
            );
            Ok(errors == 0 && (!strict || warnings == 0))
        }
        PolicyCommand::Coverage {
            file,
            descriptor_sets,
        } => {
            let (path, policy) = load(config, file.as_deref())?;
            let coverage = policy.coverage(&methods(descriptor_sets)?);
            let width = coverage.iter().map(|c| c.method.len()).max().unwrap_or(0);
            let mut uncovered = 0;
            for method in &coverage {
                let (status, detail) = match (method.closed_by, method.allowed_by.as_slice()) {
                    (Some(rule), _) => ("closed", format!("deny rule \"{rule}\" denies everyone")),
                    (None, []) => {
                        uncovered += 1;
                        (
                            "UNCOVERED",
                            "no rule allows it or closes it (denied by default)".to_owned(),
                        )
                    }
                    (None, rules) => {
                        let who: Vec<String> = rules
                            .iter()
                            .map(|(rule, principals)| format!("{} ({rule})", principals.join(", ")))
                            .collect();
                        ("allowed", who.join("; "))
                    }
                };
                println!("{:<width$}  {status:<9}  {detail}", method.method);
            }
            println!(
                "policy \"{}\" ({}): {} methods, {uncovered} uncovered",
                policy.name(),
                path.display(),
                coverage.len()
            );
            Ok(uncovered == 0)
        }
        PolicyCommand::Explain {
            policy,
            cert,
            method,
            headers,
            expect,
        } => {
            let (_, policy) = load(config, policy.as_deref())?;
            let chain = zt_tls::load_certs(cert)?;
            let domains = TrustedDomains::new(config.trust_domains.iter().cloned());
            println!("method:    {method}");
            if !served_methods().contains(method) {
                println!("           (not a method the ledger serves)");
            }
            let peer = match domains.identify(chain.first().map(|c| c.as_ref())) {
                Ok(peer) => peer,
                Err(refusal) => {
                    println!("peer:      refused before any policy runs: {refusal}");
                    println!("decision:  UNAUTHENTICATED (no handler runs)");
                    return Ok(expect.is_none_or(|e| e == Expected::Deny));
                }
            };
            println!("peer:      {}", peer.spiffe_id());
            println!("           DNS names: {}", list(peer.dns_names()));
            println!("           subject:   {}", peer.subject());
            let mut header_map = http::HeaderMap::new();
            for (name, value) in headers {
                let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_str(value),
                ) else {
                    return Err(Error::Usage(format!("invalid header {name}={value}")));
                };
                header_map.append(name, value);
            }
            let explanation = policy.explain(&Request {
                path: method,
                peer: Some(&peer),
                headers: &header_map,
            });
            let decision = match explanation.decision {
                Decision::Allow { rule } => format!("ALLOW by allow rule \"{rule}\""),
                Decision::Deny { rule } => format!("DENY by deny rule \"{rule}\""),
                Decision::DefaultDeny => "DENY by default: no rule matched".to_owned(),
            };
            println!("decision:  {decision} (policy \"{}\")", policy.name());
            println!(
                "matching:  deny rules: {}",
                list(&explanation.matching_deny)
            );
            println!(
                "           allow rules: {}",
                list(&explanation.matching_allow)
            );
            let allowed = explanation.decision.is_allowed();
            Ok(match expect {
                None => true,
                Some(Expected::Allow) => allowed,
                Some(Expected::Deny) => !allowed,
            })
        }
    }
}

fn load(config: &Config, file: Option<&Path>) -> Result<(PathBuf, Policy), Error> {
    let path = file.unwrap_or(&config.policy).to_owned();
    let policy = load_policy(&path)?;
    Ok((path, policy))
}

/// The methods to check against: the ledger's own, or those of the given descriptor sets.
fn methods(descriptor_sets: &[PathBuf]) -> Result<Vec<String>, Error> {
    if descriptor_sets.is_empty() {
        return Ok(served_methods());
    }
    let mut methods = Vec::new();
    for path in descriptor_sets {
        let bad = |reason: String| Error::DescriptorSet {
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        methods.extend(
            zt_proto::methods(&bytes).map_err(|e| bad(format!("not a FileDescriptorSet: {e}")))?,
        );
    }
    Ok(methods)
}

fn list(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}
