//! `deploy`'s preflight: the host checks the catalogue marks `preflight` (the Engine's version, CPUs, memory,
//! disk, the daemon's open files, the published ports), evaluated before the deploy's first change. A fail
//! refuses the deploy (exit 2, its evidence and fix as the message); a warn is printed and the deploy goes on.

use anyhow::Result;

use super::catalog::Selection;
use super::host::{self, HostNeeds};
use super::{Check, Outcome, facts};
use crate::engine::Engine;
use crate::printer::Printer;
use crate::spec::Spec;

/// The host checks of `selection` for `spec` on this machine; `published`: the host ports the deployment's
/// own NGINX holds.
pub fn host_checks(engine: &Engine, spec: &Spec, published: &[u16], selection: &Selection) -> Result<Vec<Check>> {
    let needs = HostNeeds::of(spec);
    let facts = facts::gather(&engine.engine_host()?, &needs.ports, published, selection.contains("host.fsync"));
    Ok(host::evaluate(&facts, &needs).into_iter().filter(|check| selection.contains(check.id)).collect())
}

/// Runs the preflight; refuses on the first fail, prints each warn.
pub fn run(engine: &Engine, spec: &Spec, published: &[u16], printer: &Printer) -> Result<()> {
    for check in host_checks(engine, spec, published, &Selection::preflight())? {
        if check.outcome == Outcome::Warn {
            printer.warning(&format!("{} ({}): {}", check.id, check.evidence, check.fix));
        }
        check.refuse_if_failed()?;
    }
    Ok(())
}

/// The host ports in `ports` lines (`443:443`, `443:443/host`, `0.0.0.0:443->443/tcp` forms start with it).
pub fn host_ports(ports: &[String]) -> Vec<u16> {
    ports
        .iter()
        .filter_map(|port| port.rsplit_once(':').map_or(Some(port.as_str()), |(host, _)| Some(host)))
        .filter_map(|host| host.rsplit(':').next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_ports_are_read() {
        assert_eq!(
            super::host_ports(&["443:443".into(), "18080:80".into(), "443:443/host".into()]),
            vec![443, 18080, 443]
        );
    }
}
