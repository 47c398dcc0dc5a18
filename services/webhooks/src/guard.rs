//! The SSRF guard: a webhook URL may not reach loopback, private, link-local (cloud metadata), shared,
//! multicast or reserved addresses, unless the operator's allow-list (`COMET_WEBHOOKS_ALLOW_HOSTS`) names the
//! host or a network holding the address.
//!
//! Names are resolved once per connection by [`GuardedResolver`], the HTTP client's only resolver: it checks
//! every address and hands the client exactly the checked ones, so there is no window between the check and
//! the connection for DNS to answer differently. Address literals in URLs skip resolution and are checked by
//! [`Guard::check_literal`] before the request is made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Longest webhook URL (CometChat's limit).
pub const MAX_URL_CHARS: usize = 255;

/// Why a URL is refused. `code` is the stable `ERR_*` the management API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("the URL is not valid: {0}")]
    Malformed(String),
    #[error("the URL is longer than {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("the URL must be https:// (http:// only for hosts on the operator's allow-list)")]
    Scheme,
    #[error("the URL may not carry credentials; use useBasicAuth with username and password")]
    Credentials,
    #[error("{host} resolves to {address}, a {range} address; webhooks may only reach public addresses")]
    Forbidden { host: String, address: IpAddr, range: &'static str },
    #[error("{host} does not resolve: {reason}")]
    Unresolved { host: String, reason: String },
}

/// An operator's allow-list: host names and networks (`10.0.0.0/8`, `127.0.0.1`, `::1`) webhooks may reach
/// although they are not public.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl AllowList {
    /// Parses comma-separated host names, addresses and CIDR networks; the bad entry is named on error.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (address, prefix) = match entry.split_once('/') {
                Some((address, prefix)) => (address, Some(prefix)),
                None => (entry, None),
            };
            let address = address.trim_start_matches('[').trim_end_matches(']');
            match address.parse::<IpAddr>() {
                Ok(ip) => {
                    let width = if ip.is_ipv4() { 32 } else { 128 };
                    let prefix = match prefix {
                        None => width,
                        Some(text) => match text.parse::<u8>() {
                            Ok(bits) if bits <= width => bits,
                            _ => return Err(format!("`{entry}`: the prefix length must be 0 to {width}")),
                        },
                    };
                    list.networks.push((ip, prefix));
                }
                Err(_) if prefix.is_none() && is_host_name(entry) => list.hosts.push(entry.to_ascii_lowercase()),
                Err(_) => return Err(format!("`{entry}` is neither a host name, an address nor a network")),
            }
        }
        Ok(list)
    }

    fn names(&self, host: &str) -> bool {
        self.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    fn holds(&self, address: IpAddr) -> bool {
        self.networks.iter().any(|(network, prefix)| in_network(address, *network, *prefix))
    }

    /// Whether `host` (a name or an address literal) is named by the list.
    fn allows_host(&self, host: &Host<&str>) -> bool {
        match host {
            Host::Domain(name) => self.names(name),
            Host::Ipv4(address) => self.holds(IpAddr::V4(*address)),
            Host::Ipv6(address) => self.holds(IpAddr::V6(*address)),
        }
    }
}

fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
}

fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(address), IpAddr::V4(network)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(address) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(address), IpAddr::V6(network)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(address) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

/// The kind of non-public range `address` is in, or `None` for a public address.
pub fn forbidden_range(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(address) => v4_range(address),
        IpAddr::V6(address) => {
            if let Some(mapped) = address.to_ipv4_mapped() {
                return v4_range(mapped);
            }
            let first = address.segments()[0];
            if address.is_loopback() {
                Some("loopback")
            } else if address.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if address.is_multicast() {
                Some("multicast")
            } else if in_network(IpAddr::V6(address), IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)), 96) {
                // NAT64: the embedded IPv4 address decides.
                let octets = address.octets();
                v4_range(Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]))
            } else if first == 0x2001 && address.segments()[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
    }
}

fn v4_range(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = address.octets();
    if address.is_loopback() {
        Some("loopback")
    } else if address.is_private() {
        Some("private")
    } else if address.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if address.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if a == 192 && b == 0 && address.octets()[2] == 0 {
        Some("IETF protocol assignments")
    } else {
        None
    }
}

/// Checks webhook URLs and addresses against the ranges and the operator's allow-list.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Arc<AllowList>,
}

impl Guard {
    pub fn new(allow: AllowList) -> Guard {
        Guard { allow: Arc::new(allow) }
    }

    /// Parses and checks a webhook URL without resolving it: syntax, length, scheme, no credentials, and an
    /// address literal in a forbidden range.
    pub fn parse(&self, text: &str) -> Result<Url, GuardError> {
        if text.chars().count() > MAX_URL_CHARS {
            return Err(GuardError::TooLong);
        }
        let url = Url::parse(text).map_err(|error| GuardError::Malformed(error.to_string()))?;
        let host = url.host().ok_or_else(|| GuardError::Malformed("it names no host".to_owned()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow.allows_host(&host) => {}
            _ => return Err(GuardError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(GuardError::Credentials);
        }
        self.check_literal(&url)?;
        Ok(url)
    }

    /// Refuses a URL whose host is an address literal in a forbidden range (names are checked when resolved).
    pub fn check_literal(&self, url: &Url) -> Result<(), GuardError> {
        let address = match url.host() {
            Some(Host::Ipv4(address)) => IpAddr::V4(address),
            Some(Host::Ipv6(address)) => IpAddr::V6(address),
            _ => return Ok(()),
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        self.check_address(&host, address)
    }

    fn check_address(&self, host: &str, address: IpAddr) -> Result<(), GuardError> {
        match forbidden_range(address) {
            Some(_) if self.allow.names(host) || self.allow.holds(address) => Ok(()),
            Some(range) => Err(GuardError::Forbidden { host: host.to_owned(), address, range }),
            None => Ok(()),
        }
    }

    /// Resolves `host` and checks every address it has: the addresses, or the first forbidden one.
    pub async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, GuardError> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|error| GuardError::Unresolved { host: host.to_owned(), reason: error.to_string() })?
            .collect();
        if addresses.is_empty() {
            return Err(GuardError::Unresolved { host: host.to_owned(), reason: "no address".to_owned() });
        }
        for address in &addresses {
            self.check_address(host, address.ip())?;
        }
        Ok(addresses)
    }

    /// Checks a URL for the management API: [`Guard::parse`], then its name resolved and checked. A name that
    /// does not resolve (yet) is accepted: deliveries to it fail and are retried.
    pub async fn check(&self, text: &str) -> Result<Url, GuardError> {
        let url = self.parse(text)?;
        if let Some(Host::Domain(name)) = url.host() {
            match self.resolve(name).await {
                Ok(_) | Err(GuardError::Unresolved { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(url)
    }

    /// An HTTP client builder whose only resolver is this guard: no proxy, no redirects. Every outbound
    /// request to a URL an app configured (webhooks, the notifications' webhook provider) is built from it.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver(self.clone()))
    }
}

/// The one way comet-server builds an HTTP client for URLs others chose (webhook receivers, moderation
/// adapters): its only resolver is the guard, no proxy, no redirects. Requests to address literals must still
/// pass [`Guard::check_literal`] (or [`Guard::parse`]) first.
pub fn guarded_client(
    guard: &Guard,
    user_agent: &str,
    connect_timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver(guard.clone()))
        .user_agent(user_agent)
        .connect_timeout(connect_timeout)
        .build()
}

/// Reads at most `limit` bytes of a response's body; the error that ended the reading early, if any.
pub async fn read_at_most(response: &mut reqwest::Response, limit: usize) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(error) => return (body, Some(error)),
        }
    }
    body.truncate(limit);
    (body, None)
}

/// The HTTP client's resolver: every name resolved through [`Guard::resolve`].
#[derive(Debug, Clone)]
struct GuardedResolver(Guard);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addresses = guard.resolve(name.as_str()).await?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_ranges_cover_loopback_private_metadata_and_mapped_forms() {
        for (text, forbidden) in [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("224.0.0.1", true),
            ("::1", true),
            ("::", true),
            ("fd00:ec2::254", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("64:ff9b::a00:1", true),
            ("93.184.216.34", false),
            ("2606:4700::1111", false),
        ] {
            let address: IpAddr = text.parse().expect("address");
            assert_eq!(forbidden_range(address).is_some(), forbidden, "{text}");
        }
    }

    #[test]
    fn urls_are_checked_before_anything_resolves() {
        let guard = Guard::default();
        assert!(matches!(guard.parse("http://93.184.216.34/hook"), Err(GuardError::Scheme)));
        assert!(matches!(guard.parse("https://127.0.0.1/hook"), Err(GuardError::Forbidden { .. })));
        assert!(matches!(guard.parse("https://[::1]:8443/hook"), Err(GuardError::Forbidden { .. })));
        assert!(matches!(guard.parse("https://169.254.169.254/latest"), Err(GuardError::Forbidden { .. })));
        assert!(matches!(guard.parse("https://u:p@example.com/"), Err(GuardError::Credentials)));
        assert!(matches!(guard.parse("not a url"), Err(GuardError::Malformed(_))));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(matches!(guard.parse(&long), Err(GuardError::TooLong)));
        assert!(guard.parse("https://example.com/hook").is_ok());
    }

    #[test]
    fn the_allow_list_admits_named_hosts_and_networks() {
        let allow = AllowList::parse("127.0.0.1, 10.0.0.0/8, receiver.internal, ::1").expect("list");
        let guard = Guard::new(allow);
        assert!(guard.parse("http://127.0.0.1:9000/hook").is_ok());
        assert!(guard.parse("https://10.9.8.7/hook").is_ok());
        assert!(guard.parse("https://[::1]/hook").is_ok());
        assert!(matches!(guard.parse("https://192.168.0.1/hook"), Err(GuardError::Forbidden { .. })));
        assert!(AllowList::parse("10.0.0.0/33").is_err());
        assert!(AllowList::parse("not_a host!").is_err());
    }
}
