use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::{Concurrency, Mau, Target};
use crate::sizing::Allocation;

/// The spec format version this cometctl reads and writes.
pub const SPEC_VERSION: u32 = 1;

/// A deployment spec. Field order is the order in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub version: u32,
    pub name: DeploymentName,
    pub target: Target,
    pub domain: String,
    pub mau: Mau,
    pub concurrency: Concurrency,
    pub retention: Retention,
    pub tls: Tls,
    pub images: Images,
    pub observability: Observability,
    pub backup: Backup,
    pub edge: Edge,
    pub kubernetes: Kubernetes,
    /// Limits of the Docker hosts (Compose and Swarm); specs written before it existed get the defaults.
    #[serde(default)]
    pub host: Host,
    /// What the chat services talk to outside the deployment; specs written before it existed get none.
    #[serde(default)]
    pub integrations: Integrations,
    pub plan: Allocation,
}

/// The longest deployment name. Swarm prefixes every config and secret with it and caps their names at 64
/// characters; the stack template keeps its suffixes within the remaining 33.
pub const MAX_NAME_LENGTH: usize = 30;

/// A deployment name: a DNS label, used as Compose project, Swarm stack and Kubernetes namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentName(String);

impl DeploymentName {
    pub fn parse(name: &str) -> Result<DeploymentName, String> {
        let valid = (1..=MAX_NAME_LENGTH).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(DeploymentName(name.to_owned()))
        } else {
            Err(format!(
                "deployment name `{name}` is not a DNS label: use 1 to {MAX_NAME_LENGTH} lowercase letters, digits and `-`, starting with a letter"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeploymentName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DeploymentName, D::Error> {
        let raw = String::deserialize(deserializer)?;
        DeploymentName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days a message is kept in TiDB.
    pub message_days: u32,
    /// Hours an event is kept on Kafka.
    pub kafka_hours: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// `init` generated a self-signed certificate for development.
    SelfSigned,
    /// The operator supplies a certificate and key at the paths below.
    Provided,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub mode: TlsMode,
    /// PEM certificate chain, relative to the deployment folder.
    pub cert_file: String,
    /// PEM private key, relative to the deployment folder.
    pub key_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    pub fn new(repository: &str, tag: &str) -> ImageRef {
        ImageRef { repository: repository.to_owned(), tag: tag.to_owned() }
    }

    /// Parses `repository:tag` (the tag after the last `:` that follows the last `/`).
    pub fn parse(reference: &str) -> Option<ImageRef> {
        let slash = reference.rfind('/').map_or(0, |at| at + 1);
        let colon = slash + reference[slash..].rfind(':')?;
        Some(ImageRef::new(&reference[..colon], &reference[colon + 1..]))
    }

    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// Image references, each overridable (private registry, mirror). Defaults are the images each upstream
/// project publishes, pinned to explicit versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    pub comet: ImageRef,
    pub nginx: ImageRef,
    pub pd: ImageRef,
    pub tikv: ImageRef,
    pub tidb: ImageRef,
    pub kafka: ImageRef,
    pub redis: ImageRef,
    pub mongodb: ImageRef,
    pub prometheus: ImageRef,
    pub grafana: ImageRef,
    pub loki: ImageRef,
    pub promtail: ImageRef,
    pub node_exporter: ImageRef,
    pub cadvisor: ImageRef,
    /// Exporters added after the first specs were written: a spec without them gets the pinned default.
    #[serde(default = "default_kafka_exporter")]
    pub kafka_exporter: ImageRef,
    #[serde(default = "default_nginx_exporter")]
    pub nginx_exporter: ImageRef,
    #[serde(default = "default_redis_exporter")]
    pub redis_exporter: ImageRef,
    /// Kubernetes only: Compose and Swarm run MongoDB with access control, and this exporter takes credentials
    /// only as flags or environment, which the Engine lists (docs/templates.md).
    #[serde(default = "default_mongodb_exporter")]
    pub mongodb_exporter: ImageRef,
}

fn default_kafka_exporter() -> ImageRef {
    ImageRef::new("docker.io/danielqsj/kafka-exporter", "v1.8.0")
}

/// The Alpine variant: its shell reads the Redis password from the secret file (the scratch variant has none).
fn default_redis_exporter() -> ImageRef {
    ImageRef::new("docker.io/oliver006/redis_exporter", "v1.67.0-alpine")
}

fn default_mongodb_exporter() -> ImageRef {
    ImageRef::new("docker.io/percona/mongodb_exporter", "0.47.2")
}

fn default_nginx_exporter() -> ImageRef {
    ImageRef::new("docker.io/nginx/nginx-prometheus-exporter", "1.4.0")
}

impl Images {
    /// The pinned upstream defaults; `comet_version` tags the comet-server image.
    pub fn defaults(comet_version: &str) -> Images {
        Images {
            comet: ImageRef::new("ghcr.io/comet-in-a-box/comet-server", comet_version),
            nginx: ImageRef::new("docker.io/library/nginx", "1.27.3"),
            pd: ImageRef::new("docker.io/pingcap/pd", "v8.5.1"),
            tikv: ImageRef::new("docker.io/pingcap/tikv", "v8.5.1"),
            tidb: ImageRef::new("docker.io/pingcap/tidb", "v8.5.1"),
            kafka: ImageRef::new("docker.io/apache/kafka", "3.9.0"),
            redis: ImageRef::new("docker.io/library/redis", "7.4.2"),
            mongodb: ImageRef::new("docker.io/library/mongo", "7.0.16"),
            prometheus: ImageRef::new("docker.io/prom/prometheus", "v3.1.0"),
            grafana: ImageRef::new("docker.io/grafana/grafana", "11.4.0"),
            loki: ImageRef::new("docker.io/grafana/loki", "3.3.2"),
            promtail: ImageRef::new("docker.io/grafana/promtail", "3.3.2"),
            node_exporter: ImageRef::new("docker.io/prom/node-exporter", "v1.8.2"),
            cadvisor: ImageRef::new("gcr.io/cadvisor/cadvisor", "v0.49.2"),
            kafka_exporter: default_kafka_exporter(),
            nginx_exporter: default_nginx_exporter(),
            redis_exporter: default_redis_exporter(),
            mongodb_exporter: default_mongodb_exporter(),
        }
    }

    /// The image of `key` (as in `named`), to override it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut ImageRef> {
        Some(match key {
            "comet" => &mut self.comet,
            "nginx" => &mut self.nginx,
            "pd" => &mut self.pd,
            "tikv" => &mut self.tikv,
            "tidb" => &mut self.tidb,
            "kafka" => &mut self.kafka,
            "redis" => &mut self.redis,
            "mongodb" => &mut self.mongodb,
            "prometheus" => &mut self.prometheus,
            "grafana" => &mut self.grafana,
            "loki" => &mut self.loki,
            "promtail" => &mut self.promtail,
            "node_exporter" => &mut self.node_exporter,
            "cadvisor" => &mut self.cadvisor,
            "kafka_exporter" => &mut self.kafka_exporter,
            "nginx_exporter" => &mut self.nginx_exporter,
            "redis_exporter" => &mut self.redis_exporter,
            "mongodb_exporter" => &mut self.mongodb_exporter,
            _ => return None,
        })
    }

    /// Every image with its key, in file order.
    pub fn named(&self) -> [(&'static str, &ImageRef); 18] {
        [
            ("comet", &self.comet),
            ("nginx", &self.nginx),
            ("pd", &self.pd),
            ("tikv", &self.tikv),
            ("tidb", &self.tidb),
            ("kafka", &self.kafka),
            ("redis", &self.redis),
            ("mongodb", &self.mongodb),
            ("prometheus", &self.prometheus),
            ("grafana", &self.grafana),
            ("loki", &self.loki),
            ("promtail", &self.promtail),
            ("node_exporter", &self.node_exporter),
            ("cadvisor", &self.cadvisor),
            ("kafka_exporter", &self.kafka_exporter),
            ("nginx_exporter", &self.nginx_exporter),
            ("redis_exporter", &self.redis_exporter),
            ("mongodb_exporter", &self.mongodb_exporter),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    pub prometheus: bool,
    pub grafana: bool,
    pub loki: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Cron expression (five fields) for scheduled backups.
    pub schedule: String,
    pub retention_days: u32,
    /// Where `cometctl backup` writes sets (and `backup list`, `verify`, `restore` read them) when no
    /// `--to` / `--from` is given: a folder, relative to the deployment folder unless absolute.
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// Requests per second per client IP at NGINX / the Ingress.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Largest request body, KiB.
    pub max_body_kib: u32,
    /// Concurrent WebSocket connections per client IP.
    pub ws_connections_per_ip: u32,
    /// Host port NGINX publishes for plain HTTP (the redirect to HTTPS and `/healthz`) on Compose and Swarm;
    /// inside the container NGINX still listens on 80. Kubernetes ignores it: the Ingress controller owns
    /// the public ports. Two deployments on one host need different ports.
    #[serde(default = "default_http_port")]
    pub http_port: Port,
    /// Host port NGINX publishes for HTTPS on Compose and Swarm (container port 443); the HTTP redirect and
    /// the gateway's allowed browser origin name it when it is not 443. Kubernetes ignores it (Ingress).
    #[serde(default = "default_https_port")]
    pub https_port: Port,
}

/// Specs written before `edge.http_port` existed published port 80.
fn default_http_port() -> Port {
    Port(80)
}

/// Specs written before `edge.https_port` existed published port 443.
fn default_https_port() -> Port {
    Port(443)
}

/// A TCP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Port(u16);

impl Port {
    /// A port number; `None` for 0.
    pub fn new(port: u16) -> Option<Port> {
        (port != 0).then_some(Port(port))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Port, D::Error> {
        let raw = i64::deserialize(deserializer)?;
        match u16::try_from(raw) {
            Ok(port) if port > 0 => Ok(Port(port)),
            _ => Err(serde::de::Error::custom(format!("port {raw} is out of range: use 1 to 65535"))),
        }
    }
}

/// The most open files the file-heavy containers (NGINX, the gateway, Kafka, TiKV, MongoDB) may hold.
pub const DEFAULT_NOFILE: u32 = 1_048_576;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// The `nofile` ulimit (soft and hard) of the containers that hold many sockets or files. It cannot exceed
    /// the Docker daemon's own limit (`LimitNOFILE` of docker.service); a lower value caps the gateway's
    /// sockets per container (each WebSocket through NGINX holds two descriptors there).
    pub nofile: u32,
}

impl Default for Host {
    fn default() -> Host {
        Host { nofile: DEFAULT_NOFILE }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    pub ingress_class: String,
    /// Empty: the cluster's default storage class.
    pub storage_class: String,
}

/// Services outside the deployment that comet-server calls (docs/spec.md, "integrations").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integrations {
    /// Private host names, addresses and networks (CIDR) that webhook receivers, push endpoints and the
    /// moderation Custom API may be at; none: only public addresses (the SSRF guard refuses the rest).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    #[serde(default)]
    pub moderation_custom_api: CustomApi,
}

/// The moderation role's Custom API: an HTTPS endpoint that rules of kind `custom_api` ask for a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomApi {
    /// Empty: no Custom API (a rule that needs it is refused when it is written).
    #[serde(default)]
    pub url: String,
    /// Basic-auth user; empty: no authentication. Its password is the file
    /// secrets/moderation_custom_api_password, which the operator writes (never this file).
    #[serde(default)]
    pub username: String,
    #[serde(default = "default_custom_api_timeout_ms")]
    pub timeout_ms: u32,
}

/// comet-server's own default (`comet_moderation::adapter::DEFAULT_TIMEOUT`).
const fn default_custom_api_timeout_ms() -> u32 {
    2000
}

/// comet-server's ceiling on an outbound call (`comet_webhooks::MAX_TIMEOUT`).
pub const MAX_OUTBOUND_TIMEOUT_MS: u32 = 15_000;

impl Default for CustomApi {
    fn default() -> CustomApi {
        CustomApi { url: String::new(), username: String::new(), timeout_ms: default_custom_api_timeout_ms() }
    }
}

impl Spec {
    /// Checks the parser cannot make, each as `(dotted path, problem)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, path: &str, problem: &str| {
            if !ok {
                problems.push((path.to_owned(), problem.to_owned()));
            }
        };
        check(
            self.version == SPEC_VERSION,
            "version",
            &format!("must be {SPEC_VERSION} (this cometctl reads spec version {SPEC_VERSION})"),
        );
        check(is_host_name(&self.domain), "domain", "must be a host name such as chat.example.com");
        check(self.retention.message_days > 0, "retention.message_days", "must be at least 1");
        check(self.retention.kafka_hours > 0, "retention.kafka_hours", "must be at least 1");
        let relative_file =
            "must be a relative path inside the deployment folder (letters, digits, `.`, `_`, `-`, `/`)";
        check(is_relative_path(&self.tls.cert_file), "tls.cert_file", relative_file);
        check(is_relative_path(&self.tls.key_file), "tls.key_file", relative_file);
        check(
            self.backup.schedule.split_whitespace().count() == 5,
            "backup.schedule",
            "must be a five-field cron expression such as \"0 3 * * *\"",
        );
        check(
            self.backup.schedule.chars().all(|c| c.is_ascii_alphanumeric() || " */,-".contains(c)),
            "backup.schedule",
            "may hold only digits, letters, spaces and `* / , -`",
        );
        check(
            !self.backup.destination.is_empty()
                && self.backup.destination.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c)),
            "backup.destination",
            "must be a path (letters, digits, `.`, `_`, `-`, `/`, `:`)",
        );
        check(self.edge.rate_limit_per_second > 0, "edge.rate_limit_per_second", "must be at least 1");
        check(self.edge.max_body_kib > 0, "edge.max_body_kib", "must be at least 1");
        check(
            (1024..=DEFAULT_NOFILE).contains(&self.host.nofile),
            "host.nofile",
            &format!("must be between 1024 and {DEFAULT_NOFILE} (and not above the Docker daemon's LimitNOFILE)"),
        );
        check(self.edge.ws_connections_per_ip > 0, "edge.ws_connections_per_ip", "must be at least 1");
        check(
            self.edge.http_port != self.edge.https_port,
            "edge.https_port",
            "must differ from edge.http_port: NGINX publishes both on the same host",
        );
        check(
            is_host_name(&self.kubernetes.ingress_class),
            "kubernetes.ingress_class",
            "must name an IngressClass (a DNS name)",
        );
        check(
            self.kubernetes.storage_class.is_empty() || is_host_name(&self.kubernetes.storage_class),
            "kubernetes.storage_class",
            "must be empty (cluster default) or name a StorageClass (a DNS name)",
        );
        for (key, image) in self.images.named() {
            check(
                is_image_part(&image.repository, false),
                &format!("images.{key}.repository"),
                "must be an image repository such as registry.example.com/team/name",
            );
            check(
                is_image_part(&image.tag, true) && image.tag != "latest",
                &format!("images.{key}.tag"),
                "must be an explicit version tag (not empty, not `latest`)",
            );
        }
        for (index, entry) in self.integrations.allow_hosts.iter().enumerate() {
            check(
                is_allowed_host(entry),
                &format!("integrations.allow_hosts[{index}]"),
                "must be a host name, an IP address or a network such as 10.0.0.0/8",
            );
        }
        let custom = &self.integrations.moderation_custom_api;
        check(
            custom.url.is_empty() || is_http_url(&custom.url),
            "integrations.moderation_custom_api.url",
            "must be empty (no Custom API) or an http(s):// URL without spaces, quotes or credentials",
        );
        check(
            custom.username.chars().all(|c| c.is_ascii_graphic() && c != ':' && c != '"'),
            "integrations.moderation_custom_api.username",
            "may hold only printable ASCII without spaces, `:` or `\"` (basic auth)",
        );
        check(
            !custom.url.is_empty() || custom.username.is_empty(),
            "integrations.moderation_custom_api.username",
            "needs the url: a user without a Custom API authenticates nowhere",
        );
        check(
            (1..=MAX_OUTBOUND_TIMEOUT_MS).contains(&custom.timeout_ms),
            "integrations.moderation_custom_api.timeout_ms",
            &format!("must be 1 to {MAX_OUTBOUND_TIMEOUT_MS}"),
        );
        problems.extend(self.plan.problems());
        problems
    }
}

/// An entry of comet-server's allow-list: a host name, an address, or an address with a prefix length.
fn is_allowed_host(entry: &str) -> bool {
    let (address, prefix) = match entry.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (entry, None),
    };
    match (address.parse::<std::net::IpAddr>(), prefix) {
        (Ok(ip), Some(prefix)) => {
            let width = if ip.is_ipv4() { 32 } else { 128 };
            prefix.parse::<u8>().is_ok_and(|length| length <= width) && !prefix.starts_with('+')
        }
        (Ok(_), None) => true,
        (Err(_), None) => is_host_name(entry),
        (Err(_), Some(_)) => false,
    }
}

/// An `http://` or `https://` URL that is safe in an environment value and carries no credentials (the
/// password belongs in its secret file).
fn is_http_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty()
        && !authority.contains('@')
        && url.len() <= 2048
        && url.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '\'' | '`' | '$'))
}

fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|part| !part.is_empty() && part != ".." && part != ".")
        && path.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
}

fn is_image_part(text: &str, tag: bool) -> bool {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (!tag && matches!(c, '/' | ':'));
    !text.is_empty() && text.len() <= 255 && text.chars().all(allowed)
}

/// What `init` decides before a spec exists.
#[derive(Debug, Clone)]
pub struct InitialSpec {
    pub name: DeploymentName,
    pub target: Target,
    pub domain: String,
    pub mau: Mau,
    pub concurrency: Concurrency,
    pub message_retention_days: u32,
    pub kafka_retention_hours: u32,
    pub comet_version: String,
    pub tls_mode: TlsMode,
    pub plan: Allocation,
}

impl Spec {
    /// A new spec with the documented defaults for everything `init` does not ask about.
    pub fn initial(initial: InitialSpec) -> Spec {
        Spec {
            version: SPEC_VERSION,
            name: initial.name,
            target: initial.target,
            domain: initial.domain,
            mau: initial.mau,
            concurrency: initial.concurrency,
            retention: Retention {
                message_days: initial.message_retention_days,
                kafka_hours: initial.kafka_retention_hours,
            },
            tls: Tls {
                mode: initial.tls_mode,
                cert_file: "tls/cert.pem".to_owned(),
                key_file: "tls/key.pem".to_owned(),
            },
            images: Images::defaults(&initial.comet_version),
            observability: Observability { prometheus: true, grafana: true, loki: true },
            backup: Backup { schedule: "0 3 * * *".to_owned(), retention_days: 14, destination: "backups".to_owned() },
            edge: Edge {
                rate_limit_per_second: 20,
                rate_limit_burst: 40,
                max_body_kib: 128,
                ws_connections_per_ip: 50,
                http_port: default_http_port(),
                https_port: default_https_port(),
            },
            kubernetes: Kubernetes { ingress_class: "nginx".to_owned(), storage_class: String::new() },
            host: Host::default(),
            integrations: Integrations::default(),
            plan: initial.plan,
        }
    }
}
