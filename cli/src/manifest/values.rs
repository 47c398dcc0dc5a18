//! The value syntax compose.yaml and stack.yaml share: durations, CPUs, memory, ports, volume entries, and `$$`.

/// A `volumes:` entry of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A host path (relative to the compose file's folder unless absolute).
    Bind { source: String, target: String, read_only: bool, propagation: Option<String> },
    /// A named volume of the file's `volumes:`.
    Volume { name: String, target: String, read_only: bool },
    /// A memory-backed folder (the long syntax `type: tmpfs` of Swarm stacks), optionally capped in bytes.
    Tmpfs { target: String, size_bytes: Option<i64> },
}

/// A `volumes:` entry in Compose's short syntax: `SOURCE:TARGET[:OPTIONS]`, a bind mount when the source is a
/// path, a named volume otherwise.
pub fn parse_mount(entry: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = entry.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => return Err(format!("volume `{entry}` is not SOURCE:TARGET[:OPTIONS]")),
    };
    let mut read_only = false;
    let mut propagation = None;
    for option in options.split(',').filter(|option| !option.is_empty()) {
        match option {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "rslave" | "rshared" | "rprivate" | "slave" | "shared" | "private" => {
                propagation = Some(option.to_owned());
            }
            other => return Err(format!("volume `{entry}`: option `{other}` is not supported")),
        }
    }
    if source.starts_with('.') || source.starts_with('/') {
        Ok(Mount::Bind { source: source.to_owned(), target: target.to_owned(), read_only, propagation })
    } else {
        Ok(Mount::Volume { name: source.to_owned(), target: target.to_owned(), read_only })
    }
}

/// A published port `HOST:CONTAINER`.
pub fn parse_port(entry: &str) -> Result<(u16, u16), String> {
    let (host, container) = entry.split_once(':').ok_or_else(|| format!("port `{entry}` is not HOST:CONTAINER"))?;
    let number = |text: &str| text.parse::<u16>().map_err(|_| format!("port `{entry}`: `{text}` is not a port"));
    Ok((number(host)?, number(container)?))
}

/// A Compose duration (`10s`, `1m30s`, `500ms`) in nanoseconds.
pub fn parse_duration_nanos(text: &str) -> Result<i64, String> {
    let invalid = || format!("duration `{text}` is not like 10s, 1m30s or 500ms");
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
        let value: i64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale: i64 = match &rest[..unit_end] {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            _ => return Err(invalid()),
        };
        total = value.checked_mul(scale).and_then(|nanos| total.checked_add(nanos)).ok_or_else(invalid)?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

/// A Compose CPU amount (`"2"`, `"0.5"`) in nano-CPUs.
pub fn parse_cpus_nanos(text: &str) -> Result<i64, String> {
    let cpus: f64 = text.parse().map_err(|_| format!("cpus `{text}` is not a number"))?;
    if !(cpus > 0.0 && cpus < 4096.0) {
        return Err(format!("cpus `{text}` is out of range"));
    }
    Ok((cpus * 1e9).round() as i64)
}

/// A Compose memory amount (`512M`, `2G`, `1024k`, plain bytes) in bytes.
pub fn parse_bytes(text: &str) -> Result<i64, String> {
    let invalid = || format!("memory `{text}` is not like 512M or 2G");
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let value: i64 = text[..split].parse().map_err(|_| invalid())?;
    let scale: i64 = match text[split..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(invalid()),
    };
    value.checked_mul(scale).ok_or_else(invalid)
}

/// Compose writes a literal `$` as `$$`; the container sees one.
pub fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}
