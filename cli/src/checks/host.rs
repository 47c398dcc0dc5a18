//! Checks of the Docker Engine's host. Every deploy runs the images present, the CPU limits within the host,
//! and the deployment not already running with the other target; `doctor` (and `deploy`'s preflight, the
//! catalogue's `preflight` rows) evaluates the recorded `HostFacts` against what the plan needs
//! (`HostNeeds`): pure functions, table-tested; `facts` gathers the facts for real.

use anyhow::Result;

use super::Check;
use crate::domain::thresholds::THRESHOLDS;
use crate::domain::{ServiceKey, ServiceKind, Target};
use crate::engine::Engine;
use crate::plan::compose::Desired;
use crate::printer::Printer;
use crate::spec::Spec;

/// Every image must be on the Engine before anything changes; missing ones are pulled (a private registry
/// in the spec's images) or named with the fix.
pub fn images_present(engine: &Engine, images: &[String], printer: &Printer) -> Result<Check> {
    for reference in images {
        if engine.image(reference)?.is_some() {
            continue;
        }
        printer.note(&format!("pulling {reference}"));
        if let Err(error) = engine.pull_image(reference) {
            return Ok(Check::fail(
                "images.present",
                format!("image {reference} is not on this Docker Engine and could not be pulled ({error})"),
                "build it (`cometctl images build`), load a bundle (`cometctl images load`) or point the spec's \
                 images at a registry this host can reach",
            ));
        }
    }
    Ok(Check::pass("images.present", format!("{} images on this Docker Engine", images.len())))
}

/// A plan whose containers ask for more CPUs than the host has fails here (the Engine would refuse them one
/// by one, half-way through the deploy).
pub fn cpus_within_host(engine: &Engine, desired: &Desired) -> Result<Check> {
    let capacity = engine.host_capacity()?;
    let largest = desired
        .containers
        .values()
        .filter_map(|containers| containers.first())
        .map(|container| {
            let nanos = container.body["HostConfig"]["NanoCpus"].as_i64().unwrap_or(0);
            (container.service.clone(), u64::try_from(nanos / 1_000_000).unwrap_or(0))
        })
        .max_by_key(|(_, millis)| *millis);
    Ok(cpu_limit(largest.as_ref().map(|(service, millis)| (service.as_str(), *millis)), capacity.cpus)
        .unwrap_or_else(|| Check::pass("host.cpus", format!("every CPU limit within the host's {}", capacity.cpus))))
}

/// The largest CPU limit (service, millicores) above the host's CPUs fails: the Engine refuses the container.
fn cpu_limit(largest: Option<(&str, u64)>, host_cpus: i64) -> Option<Check> {
    let (service, millis) = largest?;
    let host_millis = u64::try_from(host_cpus).unwrap_or(0).saturating_mul(1000);
    (host_millis > 0 && millis > host_millis).then(|| {
        Check::fail(
            "host.cpus",
            format!(
                "service `{service}` is limited to {} CPUs but this Docker host has {host_cpus}",
                millis as f64 / 1000.0
            ),
            format!("lower its cpu_millis.limit under plan.services in cometctl.yaml (at most {host_millis})"),
        )
    })
}

/// A deployment runs with one target at a time: Compose containers and Swarm services would share names,
/// networks and published ports. `running_elsewhere`: it runs with the other target on this Engine.
pub fn one_target(deployment: &str, target: Target, running_elsewhere: bool) -> Check {
    if !running_elsewhere {
        return Check::pass("deployment.target", format!("`{deployment}` runs with no other target here"));
    }
    let other = if target == Target::Compose { "a Swarm stack" } else { "Compose containers" };
    Check::fail(
        "deployment.target",
        format!("deployment `{deployment}` runs as {other} on this Docker Engine"),
        format!("remove it with `cometctl destroy` (volumes stay) before deploying it with {target}"),
    )
}

/// What the host was seen to offer; gathered by `facts`, recorded as data in tests. `None`: could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `PRETTY_NAME` of /etc/os-release.
    pub os: String,
    pub kernel: String,
    /// The Engine's version (`20.10.24+dfsg1`) and API version (`1.41`).
    pub docker_version: String,
    pub api_version: String,
    pub cpus: i64,
    pub memory_bytes: i64,
    /// Where Docker keeps its data, and the space there.
    pub disk: Option<DiskSpace>,
    /// The daemon's open-files limit (soft).
    pub daemon_nofile: Option<u64>,
    pub somaxconn: Option<u64>,
    pub netdev_max_backlog: Option<u64>,
    pub overcommit_memory: Option<u64>,
    /// The selected value of /sys/kernel/mm/transparent_hugepage/enabled (`always`, `madvise`, `never`).
    pub thp: Option<String>,
    pub swap_bytes: Option<u64>,
    /// What keeps the clock in step (a time daemon seen running, or systemd's synchronised flag).
    pub time_sync: Vec<String>,
    pub ports: Vec<(u16, PortState)>,
    /// fsync latency of the data disk.
    pub fsync: Option<FsyncSample>,
    /// Whether the data disk reports itself rotational.
    pub rotational: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpace {
    pub path: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    Free,
    /// Held by this deployment's own NGINX.
    Ours,
    /// In use by something else (the bind error).
    Busy(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsyncSample {
    pub samples: usize,
    pub p99_micros: u64,
}

/// What the plan asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNeeds {
    /// The largest CPU limit and memory limit, with their service.
    pub largest_cpu_limit: Option<(String, u64)>,
    pub largest_memory_limit: Option<(String, u64)>,
    /// Summed over every deployed replica.
    pub cpu_request_millis: u64,
    pub memory_request_mib: u64,
    pub storage_gib: u64,
    pub nofile: u32,
    pub ports: Vec<u16>,
    pub redis: bool,
    /// PD and TiKV are deployed (not standalone TiDB).
    pub tikv: bool,
}

impl HostNeeds {
    pub fn of(spec: &Spec) -> HostNeeds {
        let plan = &spec.plan;
        let observability = &spec.observability;
        let deployed = |key: ServiceKey| {
            plan.deploys(key)
                && match key {
                    ServiceKey::Prometheus | ServiceKey::NodeExporter | ServiceKey::Cadvisor => {
                        observability.prometheus
                    }
                    ServiceKey::Grafana => observability.grafana,
                    ServiceKey::Loki | ServiceKey::Promtail => observability.loki,
                    _ => true,
                }
        };
        let services: Vec<_> = plan.services.iter().filter(|(key, _)| deployed(**key)).collect();
        let long_running = || services.iter().filter(|(key, _)| key.kind() != ServiceKind::Job);
        let sum = |amount: &dyn Fn(&crate::sizing::ServiceAllocation) -> u32| {
            long_running().map(|(_, service)| u64::from(service.replicas) * u64::from(amount(service))).sum()
        };
        let largest = |amount: &dyn Fn(&crate::sizing::ServiceAllocation) -> u32| {
            services
                .iter()
                .max_by_key(|(_, service)| amount(service))
                .map(|(key, service)| (key.key().to_owned(), u64::from(amount(service))))
        };
        HostNeeds {
            largest_cpu_limit: largest(&|service| service.cpu_millis.limit),
            largest_memory_limit: largest(&|service| service.memory_mib.limit),
            cpu_request_millis: sum(&|service| service.cpu_millis.request),
            memory_request_mib: sum(&|service| service.memory_mib.request),
            storage_gib: sum(&|service| service.storage_gib),
            nofile: spec.host.nofile,
            ports: vec![spec.edge.http_port.get(), spec.edge.https_port.get()],
            redis: deployed(ServiceKey::Redis),
            tikv: !plan.standalone_tidb(),
        }
    }
}

/// `major.minor` of a version string (`20.10.24+dfsg1` → (20, 10), `6.1.0-18-amd64` → (6, 1)).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|part| part.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

const SYSCTL_FILE: &str = "/etc/sysctl.d/90-comet.conf";

fn sysctl_fix(key: &str, value: u64) -> String {
    format!("sysctl -w {key}={value} && echo '{key} = {value}' >> {SYSCTL_FILE} (or `cometctl doctor --apply`)")
}

/// The systemd drop-in that raises the Docker daemon's open-files limit (printed by `--apply`).
pub const NOFILE_DROP_IN: &str = "/etc/systemd/system/docker.service.d/comet-nofile.conf";

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// Every host check, from recorded facts.
pub fn evaluate(facts: &HostFacts, needs: &HostNeeds) -> Vec<Check> {
    let mut checks = vec![os(facts), docker(facts), cpus(facts, needs), memory(facts, needs), disk(facts, needs)];
    checks.push(nofile(facts, needs));
    for (id, key, value, limit) in [
        ("host.somaxconn", "net.core.somaxconn", facts.somaxconn, THRESHOLDS.somaxconn),
        (
            "host.netdev_max_backlog",
            "net.core.netdev_max_backlog",
            facts.netdev_max_backlog,
            THRESHOLDS.netdev_max_backlog,
        ),
    ] {
        checks.push(match value {
            None => Check::skip(id, format!("/proc/sys/{} could not be read", key.replace('.', "/"))),
            Some(value) => Check::against(id, &limit, value, format!("{key} = {value}"), &sysctl_fix(key, limit.warn)),
        });
    }
    checks.push(
        match (needs.redis, facts.overcommit_memory) {
            (false, _) => Check::skip("host.overcommit", "Redis is not deployed"),
            (true, None) => Check::skip("host.overcommit", "/proc/sys/vm/overcommit_memory could not be read"),
            (true, Some(1)) => Check::pass("host.overcommit", "vm.overcommit_memory = 1"),
            (true, Some(value)) => Check::warn(
                "host.overcommit",
                format!("vm.overcommit_memory = {value}: Redis's background save can fail under memory pressure"),
                sysctl_fix("vm.overcommit_memory", 1),
            ),
        }
        .with_threshold("1"),
    );
    checks.push(match facts.thp.as_deref() {
        None => Check::skip("host.thp", "/sys/kernel/mm/transparent_hugepage/enabled could not be read"),
        Some("always") => Check::warn(
            "host.thp",
            "transparent huge pages: always (latency spikes and memory bloat in Redis and TiKV)",
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled (or `cometctl doctor --apply`; persist with \
             transparent_hugepage=madvise on the kernel command line)",
        ),
        Some(mode) => Check::pass("host.thp", format!("transparent huge pages: {mode}")),
    }
    .with_threshold("madvise or never"));
    checks.push(
        match (needs.tikv, facts.swap_bytes) {
            (false, _) => Check::skip("host.swap", "TiKV is not deployed (standalone TiDB)"),
            (true, None) => Check::skip("host.swap", "/proc/swaps could not be read"),
            (true, Some(0)) => Check::pass("host.swap", "no swap"),
            (true, Some(bytes)) => Check::warn(
                "host.swap",
                format!("{:.1} GiB of swap: TiKV's latency collapses when it swaps", gib(bytes)),
                "swapoff -a, and remove the swap entries from /etc/fstab",
            ),
        }
        .with_threshold("no swap"),
    );
    checks.push(if facts.time_sync.is_empty() {
        Check::warn(
            "host.time_sync",
            "no time daemon (chronyd, ntpd, systemd-timesyncd) runs and systemd reports no synchronised clock",
            "apt-get install chrony (PD's timestamp oracle, certificate checks and log timelines need a synchronised clock)",
        )
    } else {
        Check::pass("host.time_sync", format!("kept in step by {}", facts.time_sync.join(", ")))
    });
    checks.push(ports(facts));
    checks.push(match facts.fsync {
        None => Check::skip("host.fsync", "the data disk could not be written"),
        Some(sample) => Check::against(
            "host.fsync",
            &THRESHOLDS.fsync_p99_ms,
            sample.p99_micros / 1000,
            format!("fsync p99 {:.2} ms over {} writes", sample.p99_micros as f64 / 1000.0, sample.samples),
            "put Docker's data (and the store volumes) on a faster disk (local NVMe SSD)",
        ),
    });
    checks.push(match (needs.tikv, facts.rotational) {
        (false, _) => Check::skip("host.ssd", "TiKV is not deployed (standalone TiDB)"),
        (true, None) => Check::skip("host.ssd", "the data disk's type could not be read"),
        (true, Some(false)) => Check::pass("host.ssd", "the data disk is not rotational"),
        (true, Some(true)) => Check::warn(
            "host.ssd",
            "the data disk reports itself rotational (a virtual disk may report so wrongly)",
            "put TiKV's volume on an SSD",
        ),
    });
    checks
}

fn os(facts: &HostFacts) -> Check {
    let evidence = format!("{}, kernel {}", if facts.os.is_empty() { "unknown OS" } else { &facts.os }, facts.kernel);
    match major_minor(&facts.kernel) {
        None => Check::skip("host.os", format!("{evidence}: the kernel version could not be read")),
        Some(version) if version < (3, 10) => {
            Check::fail("host.os", evidence, "Docker needs kernel 3.10 or later; upgrade the OS")
        }
        Some(version) if version < (5, 4) => {
            Check::warn("host.os", evidence, "upgrade to a kernel of 5.4 or later (cgroup v2, overlayfs fixes)")
        }
        Some(_) => Check::pass("host.os", evidence),
    }
    .with_threshold("warn < 5.4, fail < 3.10")
}

fn docker(facts: &HostFacts) -> Check {
    let evidence = format!("Docker Engine {} (API {})", facts.docker_version, facts.api_version);
    let api = major_minor(&facts.api_version);
    match major_minor(&facts.docker_version) {
        _ if api.is_some_and(|api| api < (1, 41)) => Check::fail(
            "host.docker",
            evidence,
            "upgrade the Docker Engine to 24 or later (API 1.41 is the oldest supported)",
        ),
        Some(version) if version >= (24, 0) => Check::pass("host.docker", evidence),
        Some(version) if version >= (20, 10) => Check::warn(
            "host.docker",
            format!("{evidence}: supported, but 24 or later is recommended"),
            "upgrade the Docker Engine to 24 or later",
        ),
        _ => Check::fail("host.docker", evidence, "upgrade the Docker Engine to 24 or later"),
    }
    .with_threshold("warn < 24, fail < 20.10 or API < 1.41")
}

fn cpus(facts: &HostFacts, needs: &HostNeeds) -> Check {
    let largest = needs.largest_cpu_limit.as_ref().map(|(service, millis)| (service.as_str(), *millis));
    if let Some(check) = cpu_limit(largest, facts.cpus) {
        return check.with_threshold("every limit within the host");
    }
    let host_millis = u64::try_from(facts.cpus).unwrap_or(0) * 1000;
    let evidence = format!("{} CPUs; the plan reserves {:.2}", facts.cpus, needs.cpu_request_millis as f64 / 1000.0);
    reserved(
        "host.cpus",
        evidence,
        needs.cpu_request_millis > host_millis,
        "its services will compete for CPU",
        "add CPUs, or lower cpu_millis.request under plan.services in cometctl.yaml",
    )
}

/// Reservations within the host pass; above it, a warn (Compose does not enforce them, Swarm's own check
/// refuses an unplaceable plan).
fn reserved(id: &'static str, evidence: String, over: bool, consequence: &str, fix: &str) -> Check {
    if over { Check::warn(id, format!("{evidence}: {consequence}"), fix) } else { Check::pass(id, evidence) }
        .with_threshold("fail: a limit above the host; warn: reservations above the host")
}

fn memory(facts: &HostFacts, needs: &HostNeeds) -> Check {
    let host_mib = u64::try_from(facts.memory_bytes).unwrap_or(0) >> 20;
    if let Some((service, mib)) = &needs.largest_memory_limit
        && host_mib > 0
        && *mib > host_mib
    {
        return Check::fail(
            "host.memory",
            format!("service `{service}` is limited to {mib} MiB but this host has {host_mib} MiB"),
            format!("lower its memory_mib.limit under plan.services in cometctl.yaml (at most {host_mib})"),
        )
        .with_threshold("every limit within the host");
    }
    let evidence = format!("{host_mib} MiB; the plan reserves {} MiB", needs.memory_request_mib);
    reserved(
        "host.memory",
        evidence,
        needs.memory_request_mib > host_mib,
        "containers may be OOM-killed under load",
        "add memory, or lower memory_mib.request under plan.services in cometctl.yaml",
    )
}

fn disk(facts: &HostFacts, needs: &HostNeeds) -> Check {
    let Some(disk) = &facts.disk else {
        return Check::skip("host.disk", "the Docker data directory's file system could not be read");
    };
    let percent = (disk.free_bytes.saturating_mul(100)).checked_div(disk.total_bytes).unwrap_or(0);
    let evidence = format!(
        "{}: {:.1} GiB free of {:.1} GiB ({percent} %); the plan's volumes grow to {} GiB",
        disk.path,
        gib(disk.free_bytes),
        gib(disk.total_bytes),
        needs.storage_gib
    );
    let fix = format!("free space on {} or move Docker's data-root to a larger disk", disk.path);
    let check = Check::against("host.disk", &THRESHOLDS.disk_free_percent, percent, evidence.clone(), &fix);
    if check.outcome == super::Outcome::Pass && gib(disk.free_bytes) < needs.storage_gib as f64 {
        return Check::warn(
            "host.disk",
            format!("{evidence}: not room for the plan's storage"),
            format!("{fix}, or lower storage_gib or retention in cometctl.yaml"),
        )
        .with_threshold(format!("{}; and room for the plan's storage", THRESHOLDS.disk_free_percent.describe()));
    }
    check
}

fn nofile(facts: &HostFacts, needs: &HostNeeds) -> Check {
    let Some(limit) = facts.daemon_nofile else {
        return Check::skip("host.nofile", "the Docker daemon's limits (/proc/<dockerd>/limits) could not be read");
    };
    let drop_in = format!(
        "raise the daemon's limit: {NOFILE_DROP_IN} with `[Service]` `LimitNOFILE=1048576`, then `systemctl \
         daemon-reload && systemctl restart docker` (`cometctl doctor --apply` prints the file)"
    );
    if limit < u64::from(needs.nofile) {
        return Check::fail(
            "host.nofile",
            format!(
                "the Docker daemon allows {limit} open files; the spec's host.nofile asks containers for {} (they \
                 would not start)",
                needs.nofile
            ),
            format!("{drop_in}; or lower host.nofile in cometctl.yaml to at most {limit}"),
        )
        .with_threshold(format!("fail < host.nofile ({}), warn < {}", needs.nofile, THRESHOLDS.daemon_nofile.warn));
    }
    Check::against(
        "host.nofile",
        &THRESHOLDS.daemon_nofile,
        limit,
        format!("the Docker daemon allows {limit} open files; host.nofile is {}", needs.nofile),
        &drop_in,
    )
    .with_threshold(format!("fail < host.nofile ({}), warn < {}", needs.nofile, THRESHOLDS.daemon_nofile.warn))
}

fn ports(facts: &HostFacts) -> Check {
    let busy: Vec<String> = facts
        .ports
        .iter()
        .filter_map(|(port, state)| match state {
            PortState::Busy(why) => Some(format!("{port} ({why})")),
            PortState::Free | PortState::Ours => None,
        })
        .collect();
    let all = facts.ports.iter().map(|(port, _)| port.to_string()).collect::<Vec<_>>().join(", ");
    if busy.is_empty() {
        Check::pass("host.ports", format!("{all}: free or held by this deployment's NGINX"))
    } else {
        Check::fail(
            "host.ports",
            format!("in use by another process: {}", busy.join(", ")),
            "stop what holds them (`ss -ltnp`), or choose edge.http_port / edge.https_port in cometctl.yaml",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> HostFacts {
        HostFacts {
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-18-amd64".into(),
            docker_version: "26.1.4".into(),
            api_version: "1.45".into(),
            cpus: 8,
            memory_bytes: 32 << 30,
            disk: Some(DiskSpace { path: "/var/lib/docker".into(), free_bytes: 400 << 30, total_bytes: 500 << 30 }),
            daemon_nofile: Some(1_048_576),
            somaxconn: Some(4096),
            netdev_max_backlog: Some(16384),
            overcommit_memory: Some(1),
            thp: Some("madvise".into()),
            swap_bytes: Some(0),
            time_sync: vec!["chronyd".into()],
            ports: vec![(80, PortState::Free), (443, PortState::Ours)],
            fsync: Some(FsyncSample { samples: 16, p99_micros: 2_100 }),
            rotational: Some(false),
        }
    }

    fn needs() -> HostNeeds {
        HostNeeds {
            largest_cpu_limit: Some(("tikv".into(), 4000)),
            largest_memory_limit: Some(("tikv".into(), 8192)),
            cpu_request_millis: 6000,
            memory_request_mib: 16384,
            storage_gib: 200,
            nofile: 1_048_576,
            ports: vec![80, 443],
            redis: true,
            tikv: true,
        }
    }

    fn outcome(facts: &HostFacts, needs: &HostNeeds, id: &str) -> (super::super::Outcome, String) {
        let check = evaluate(facts, needs).into_iter().find(|check| check.id == id).expect("the check exists");
        (check.outcome, format!("{} / {}", check.evidence, check.fix))
    }

    #[test]
    fn a_healthy_host_passes_every_check() {
        for check in evaluate(&healthy(), &needs()) {
            assert_eq!(check.outcome, super::super::Outcome::Pass, "{check:?}");
        }
    }

    /// One recorded fact changed at a time, and the one check it belongs to with its outcome.
    #[test]
    fn each_fact_moves_exactly_its_check() {
        use super::super::Outcome::{Fail, Skip, Warn};
        type Change = fn(&mut HostFacts, &mut HostNeeds);
        let cases: &[(&str, Change, &str, super::super::Outcome, &str)] = &[
            ("old docker", |f, _| f.docker_version = "20.10.24+dfsg1".into(), "host.docker", Warn, "24 or later"),
            ("ancient api", |f, _| f.api_version = "1.40".into(), "host.docker", Fail, "API 1.41"),
            ("docker 19", |f, _| f.docker_version = "19.03.1".into(), "host.docker", Fail, "upgrade"),
            ("old kernel", |f, _| f.kernel = "4.19.0".into(), "host.os", Warn, "5.4"),
            ("nofile below spec", |f, _| f.daemon_nofile = Some(20_000), "host.nofile", Fail, "host.nofile"),
            (
                "nofile below advice",
                |f, n| {
                    f.daemon_nofile = Some(20_000);
                    n.nofile = 16_384;
                },
                "host.nofile",
                Warn,
                "LimitNOFILE",
            ),
            ("somaxconn", |f, _| f.somaxconn = Some(128), "host.somaxconn", Warn, "sysctl -w net.core.somaxconn=4096"),
            ("somaxconn tiny", |f, _| f.somaxconn = Some(64), "host.somaxconn", Fail, "sysctl"),
            ("backlog", |f, _| f.netdev_max_backlog = Some(1000), "host.netdev_max_backlog", Warn, "sysctl"),
            ("overcommit", |f, _| f.overcommit_memory = Some(0), "host.overcommit", Warn, "vm.overcommit_memory=1"),
            (
                "no redis",
                |f, n| {
                    f.overcommit_memory = Some(0);
                    n.redis = false;
                },
                "host.overcommit",
                Skip,
                "Redis is not deployed",
            ),
            ("thp", |f, _| f.thp = Some("always".into()), "host.thp", Warn, "madvise"),
            ("swap", |f, _| f.swap_bytes = Some(2 << 30), "host.swap", Warn, "swapoff"),
            (
                "swap standalone",
                |f, n| {
                    f.swap_bytes = Some(2 << 30);
                    n.tikv = false;
                },
                "host.swap",
                Skip,
                "standalone",
            ),
            ("no clock", |f, _| f.time_sync.clear(), "host.time_sync", Warn, "chrony"),
            ("port busy", |f, _| f.ports[0].1 = PortState::Busy("address in use".into()), "host.ports", Fail, "80"),
            (
                "slow disk",
                |f, _| f.fsync = Some(FsyncSample { samples: 16, p99_micros: 9_000 }),
                "host.fsync",
                Warn,
                "faster",
            ),
            (
                "awful disk",
                |f, _| f.fsync = Some(FsyncSample { samples: 16, p99_micros: 45_000 }),
                "host.fsync",
                Fail,
                "faster",
            ),
            ("rotational", |f, _| f.rotational = Some(true), "host.ssd", Warn, "SSD"),
            (
                "disk low",
                |f, _| {
                    f.disk = Some(DiskSpace { path: "/d".into(), free_bytes: 10 << 30, total_bytes: 100 << 30 });
                },
                "host.disk",
                Warn,
                "free space",
            ),
            (
                "disk full",
                |f, _| {
                    f.disk = Some(DiskSpace { path: "/d".into(), free_bytes: 4 << 30, total_bytes: 100 << 30 });
                },
                "host.disk",
                Fail,
                "free space",
            ),
            ("disk small for plan", |_, n| n.storage_gib = 450, "host.disk", Warn, "storage"),
            ("cpu limit", |f, _| f.cpus = 2, "host.cpus", Fail, "at most 2000"),
            ("cpu reserved", |_, n| n.cpu_request_millis = 9000, "host.cpus", Warn, "compete"),
            ("memory limit", |f, _| f.memory_bytes = 4 << 30, "host.memory", Fail, "at most 4096"),
            ("memory reserved", |_, n| n.memory_request_mib = 40_000, "host.memory", Warn, "OOM"),
            ("no dockerd", |f, _| f.daemon_nofile = None, "host.nofile", Skip, "could not be read"),
        ];
        for (name, change, id, expected, text) in cases {
            let (mut facts, mut needs) = (healthy(), needs());
            change(&mut facts, &mut needs);
            let (got, message) = outcome(&facts, &needs, id);
            assert_eq!(got, *expected, "{name}: {message}");
            assert!(message.contains(text), "{name}: `{text}` not in {message}");
            let moved: Vec<&str> = evaluate(&facts, &needs)
                .iter()
                .filter(|check| check.outcome != super::super::Outcome::Pass)
                .map(|check| check.id)
                .collect();
            // Leaving a store out skips each check that exists for it (TiKV: swap and SSD), nothing else.
            if *expected != Skip {
                assert_eq!(moved, vec![*id], "{name}: other checks moved too");
            }
        }
    }
}
