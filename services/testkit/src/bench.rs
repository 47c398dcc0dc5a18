//! What the services' benches share: their knobs and the CPU their own threads used.

/// The bench knob `name` (an environment variable), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) used so far by this process's threads whose name starts with one of
/// `prefixes`, from /proc/self/task (Linux; 0 elsewhere).
pub fn threads_cpu_seconds(prefixes: &[&str]) -> f64 {
    let mut ticks = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let path = entry.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|prefix| name.trim().starts_with(prefix)) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        ticks += fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    }
    ticks / 100.0
}
