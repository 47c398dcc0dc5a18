//! Gathers `HostFacts` on the machine cometctl runs on, which must be the Docker host for the kernel facts to
//! mean anything (the Engine's own facts come through its API): /etc/os-release, /proc/sys, /proc/swaps,
//! /proc/net/tcp, the daemon's /proc/<pid>/limits, /sys/kernel/mm/transparent_hugepage, statvfs and a brief
//! fsync measurement in Docker's data directory. Nothing here changes the host but the measurement's own
//! file, which is removed. Every read that fails leaves its fact `None`, and its check says so (a skip).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use super::host::{DiskSpace, FsyncSample, HostFacts, PortState};
use crate::plan::observed::EngineHost;

/// How many synchronous 4 KiB writes the fsync measurement makes (its p99 is then the worst but one or two;
/// about 16 × the disk's latency of wall time).
const FSYNC_SAMPLES: usize = 16;

/// Facts about this machine and its Engine. `published`: the host ports this deployment's own containers
/// publish (NGINX's), which count as held by it rather than busy. `measure_fsync`: time synchronous writes
/// in the data directory (about 16 disk latencies; `deploy`'s preflight leaves it out).
pub fn gather(engine: &EngineHost, ports: &[u16], published: &[u16], measure_fsync: bool) -> HostFacts {
    let root = Path::new(&engine.root_dir);
    HostFacts {
        os: engine.os.clone(),
        kernel: engine.kernel.clone(),
        docker_version: engine.version.clone(),
        api_version: engine.api_version.clone(),
        cpus: engine.cpus,
        memory_bytes: engine.memory_bytes,
        disk: disk_space(root),
        daemon_nofile: daemon_nofile(),
        somaxconn: sysctl("net/core/somaxconn"),
        netdev_max_backlog: sysctl("net/core/netdev_max_backlog"),
        overcommit_memory: sysctl("vm/overcommit_memory"),
        thp: read("/sys/kernel/mm/transparent_hugepage/enabled").and_then(|text| selected(&text)),
        swap_bytes: read("/proc/swaps").map(|text| swap_bytes(&text)),
        time_sync: time_sync(),
        ports: port_states(ports, published),
        fsync: if measure_fsync { fsync(root) } else { None },
        rotational: rotational(root),
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn sysctl(key: &str) -> Option<u64> {
    read(&format!("/proc/sys/{key}"))?.split_whitespace().next()?.parse().ok()
}

/// `always [madvise] never` → `madvise`.
fn selected(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|word| word.strip_prefix('[')?.strip_suffix(']').map(str::to_owned))
}

/// The sum of /proc/swaps' sizes (KiB), in bytes.
fn swap_bytes(text: &str) -> u64 {
    text.lines().skip(1).filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok()).sum::<u64>() * 1024
}

fn process_names() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            Some((pid, name.trim().to_owned()))
        })
        .collect()
}

/// The Docker daemon's soft open-files limit.
fn daemon_nofile() -> Option<u64> {
    let pid = read("/var/run/docker.pid")
        .and_then(|text| text.trim().parse::<u32>().ok())
        .or_else(|| process_names().into_iter().find(|(_, name)| name == "dockerd").map(|(pid, _)| pid))?;
    let limits = read(&format!("/proc/{pid}/limits"))?;
    open_files_limit(&limits)
}

/// `Max open files            20000                20000                files` → 20000 (unlimited: u64::MAX).
fn open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    if soft == "unlimited" { Some(u64::MAX) } else { soft.parse().ok() }
}

fn time_sync() -> Vec<String> {
    const DAEMONS: &[&str] = &["chronyd", "ntpd", "systemd-timesyn", "openntpd", "ntpsec", "timesyncd"];
    let mut found: BTreeSet<String> = process_names()
        .into_iter()
        .filter(|(_, name)| DAEMONS.contains(&name.as_str()))
        .map(|(_, name)| if name == "systemd-timesyn" { "systemd-timesyncd".to_owned() } else { name })
        .collect();
    if Path::new("/run/systemd/timesync/synchronized").exists() {
        found.insert("systemd (clock synchronised)".to_owned());
    }
    found.into_iter().collect()
}

/// Ports listening on this host, from /proc/net/tcp and tcp6 (state 0A).
fn listening_ports() -> BTreeSet<u16> {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().filter_map(|path| read(path)).flat_map(|text| listening(&text)).collect()
}

fn listening(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            (state == "0A").then_some(())?;
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

fn port_states(ports: &[u16], published: &[u16]) -> Vec<(u16, PortState)> {
    let listening = listening_ports();
    ports
        .iter()
        .map(|port| {
            let state = if published.contains(port) {
                PortState::Ours
            } else if listening.contains(port) {
                PortState::Busy("another process listens on it".to_owned())
            } else {
                PortState::Free
            };
            (*port, state)
        })
        .collect()
}

fn disk_space(root: &Path) -> Option<DiskSpace> {
    let stat = rustix::fs::statvfs(root).ok()?;
    Some(DiskSpace {
        path: root.display().to_string(),
        free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
    })
}

/// Synchronous 4 KiB writes in `root`, each followed by fdatasync; the file is removed afterwards.
fn fsync(root: &Path) -> Option<FsyncSample> {
    let path = root.join(format!(".cometctl-doctor-fsync-{}", std::process::id()));
    let measure = || -> std::io::Result<Vec<u64>> {
        let mut file = std::fs::OpenOptions::new().create_new(true).write(true).open(&path)?;
        let block = [0x5a_u8; 4096];
        let mut micros = Vec::with_capacity(FSYNC_SAMPLES);
        for _ in 0..FSYNC_SAMPLES {
            let started = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            micros.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        Ok(micros)
    };
    let measured = measure();
    let _ = std::fs::remove_file(&path);
    let mut micros = measured.ok()?;
    micros.sort_unstable();
    let index = (micros.len() * 99).div_ceil(100).saturating_sub(1);
    Some(FsyncSample { samples: micros.len(), p99_micros: micros.get(index).copied()? })
}

/// Whether the block device holding `root` is rotational (a partition's queue is its disk's).
fn rotational(root: &Path) -> Option<bool> {
    let stat = rustix::fs::stat(root).ok()?;
    let (major, minor) = (rustix::fs::major(stat.st_dev), rustix::fs::minor(stat.st_dev));
    let device = format!("/sys/dev/block/{major}:{minor}");
    let text =
        read(&format!("{device}/queue/rotational")).or_else(|| read(&format!("{device}/../queue/rotational")))?;
    Some(text.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_and_sys_texts_are_read() {
        assert_eq!(selected("always [madvise] never\n").as_deref(), Some("madvise"));
        assert_eq!(selected("[always] madvise never").as_deref(), Some("always"));
        let swaps = "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 2097148 0 -2\n";
        assert_eq!(swap_bytes(swaps), 2_097_148 * 1024);
        assert_eq!(swap_bytes("Filename\tType\tSize\tUsed\tPriority\n"), 0);
        let limits = "Limit Soft Limit Hard Limit Units\nMax open files            20000                20000                files\n";
        assert_eq!(open_files_limit(limits), Some(20_000));
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                   0: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   \
                   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        assert_eq!(listening(tcp), vec![443]);
    }
}
