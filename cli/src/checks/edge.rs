//! Checks of the edge and of the deployment's security, from recorded answers and configurations (pure):
//! NGINX's HTTPS with the deployment's certificate, its expiry, the TLS versions, HSTS, HTTP only redirecting,
//! a WebSocket upgrade reaching the gateway; only NGINX publishing ports, encrypted Swarm networks, no secret
//! value in a container's environment, containers as hardened as rendered, and the secrets' age.

use super::Check;
use super::probe::EdgeAnswers;
use crate::domain::thresholds::THRESHOLDS;
use crate::plan::observed::ContainerConfig;

/// What the edge checks compare with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeExpected {
    /// The DER of the deployment's certificate (tls/cert.pem), if it could be read.
    pub certificate: Option<Vec<u8>>,
    /// The rendered nginx.conf's `ssl_protocols` line.
    pub ssl_protocols: Option<String>,
    pub now: i64,
}

pub const EDGE_IDS: &[&str] =
    &["edge.https", "edge.redirect", "edge.certificate_expiry", "edge.tls_versions", "edge.hsts", "edge.websocket"];

pub fn evaluate_edge(answers: &EdgeAnswers, expected: &EdgeExpected) -> Vec<Check> {
    let exchange = match &answers.https {
        Ok(exchange) => exchange,
        Err(why) => {
            let mut checks = vec![Check::fail(
                "edge.https",
                format!("NGINX does not answer on HTTPS: {why}"),
                "check the NGINX container (`cometctl status`, `docker logs <deployment>-nginx-1`)",
            )];
            checks.extend(EDGE_IDS[1..].iter().map(|id| Check::skip(id, "NGINX does not answer on HTTPS")));
            return checks;
        }
    };
    let ours = expected.certificate.as_deref().is_some_and(|ours| ours == exchange.certificate.as_slice());
    let https = if exchange.head.status == 0 || exchange.head.status >= 500 {
        Check::fail(
            "edge.https",
            format!("NGINX answered GET / with {} over {}", exchange.head.status, exchange.version),
            "read `docker logs <deployment>-nginx-1`",
        )
    } else if expected.certificate.is_none() {
        Check::warn(
            "edge.https",
            format!("answers over {}; the deployment's certificate could not be read to compare", exchange.version),
            "put the certificate at the spec's tls.cert_file",
        )
    } else if !ours {
        Check::fail(
            "edge.https",
            "NGINX serves a certificate that is not the deployment's (tls.cert_file)",
            "`cometctl deploy` mounts the deployment's certificate; reload NGINX after replacing it (`docker kill -s HUP \
             <nginx container>`)",
        )
    } else {
        Check::pass("edge.https", format!("answers over {} with the deployment's certificate", exchange.version))
    };
    let expiry = match crate::tls::not_after(&exchange.certificate) {
        None => Check::skip("edge.certificate_expiry", "the served certificate could not be read"),
        Some(not_after) => {
            let days = (not_after - expected.now).div_euclid(86_400);
            Check::against(
                "edge.certificate_expiry",
                &THRESHOLDS.certificate_days,
                u64::try_from(days).unwrap_or(0),
                if days < 0 { format!("expired {} days ago", -days) } else { format!("expires in {days} days") },
                "renew it and put it at the spec's tls.cert_file and tls.key_file, then reload NGINX",
            )
        }
    };
    let versions = match (&answers.tls12, &answers.tls13) {
        (Ok(()), Ok(())) => match expected.ssl_protocols.as_deref() {
            Some(line) if line.split_whitespace().all(|word| matches!(word, "TLSv1.2" | "TLSv1.3")) => {
                Check::pass("edge.tls_versions", format!("TLS 1.2 and 1.3 accepted; nginx.conf: ssl_protocols {line}"))
            }
            Some(line) => Check::fail(
                "edge.tls_versions",
                format!("nginx.conf allows more than TLS 1.2 and 1.3: ssl_protocols {line}"),
                "`cometctl render` writes `ssl_protocols TLSv1.2 TLSv1.3`; deploy it",
            ),
            None => Check::warn(
                "edge.tls_versions",
                "TLS 1.2 and 1.3 accepted; the rendered nginx.conf has no ssl_protocols line to rule out older ones",
                "`cometctl render` writes `ssl_protocols TLSv1.2 TLSv1.3`",
            ),
        },
        (Err(why), _) => {
            Check::warn("edge.tls_versions", format!("TLS 1.2 refused: {why}"), "older clients cannot connect")
        }
        (_, Err(why)) => {
            Check::fail("edge.tls_versions", format!("TLS 1.3 refused: {why}"), "enable TLSv1.3 in nginx.conf")
        }
    }
    .with_threshold("TLS 1.2 and 1.3 only");
    let hsts = match exchange.head.header("strict-transport-security") {
        Some(value) if max_age(value).is_some_and(|age| age >= 15_552_000) => {
            Check::pass("edge.hsts", format!("Strict-Transport-Security: {value}"))
        }
        Some(value) => Check::warn(
            "edge.hsts",
            format!("Strict-Transport-Security: {value} (shorter than 180 days)"),
            "the rendered nginx.conf sends max-age=63072000",
        ),
        None => Check::fail(
            "edge.hsts",
            "no Strict-Transport-Security header on HTTPS",
            "the rendered nginx.conf adds it; `cometctl deploy`",
        ),
    }
    .with_threshold("max-age ≥ 180 days");
    let redirect = match &answers.http {
        Err(why) => Check::fail("edge.redirect", format!("NGINX does not answer on HTTP: {why}"), ""),
        Ok(head)
            if matches!(head.status, 301 | 302 | 307 | 308)
                && head.header("location").is_some_and(|location| location.starts_with("https://")) =>
        {
            Check::pass(
                "edge.redirect",
                format!("GET / → {} {}", head.status, head.header("location").unwrap_or_default()),
            )
        }
        Ok(head) => Check::fail(
            "edge.redirect",
            format!("HTTP answered GET / with {} instead of a redirect to HTTPS", head.status),
            "the rendered nginx.conf's port-80 server only redirects; `cometctl deploy`",
        ),
    };
    let websocket = match &answers.websocket {
        Err(why) => Check::fail("edge.websocket", format!("the upgrade failed: {why}"), ""),
        Ok(head) if head.status == 101 => Check::pass("edge.websocket", "101 Switching Protocols through NGINX"),
        Ok(head) if matches!(head.status, 400..=499) && head.body.contains("\"error\"") => Check::pass(
            "edge.websocket",
            format!(
                "the gateway itself answered the tokenless upgrade ({}, its error envelope) through NGINX",
                head.status
            ),
        ),
        Ok(head) => Check::fail(
            "edge.websocket",
            format!("the upgrade of /v3/ws got {} from NGINX, not the gateway", head.status),
            "check the gateway (`cometctl status`) and the `/v3/ws` location of nginx.conf",
        ),
    };
    vec![https, redirect, expiry, versions, hsts, websocket]
}

fn max_age(header: &str) -> Option<u64> {
    header.split(';').find_map(|part| part.trim().strip_prefix("max-age=")?.trim_matches('"').parse().ok())
}

/// What the security checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityFacts {
    /// Every container of the deployment: its service, published host ports, configuration.
    pub containers: Vec<(String, Vec<String>, ContainerConfig)>,
    /// How each service is rendered: (service, user, read_only, drops all capabilities).
    pub rendered: Vec<(String, Option<String>, bool, bool)>,
    /// The deployment's secret files: (name, value, seconds since it was written).
    pub secrets: Vec<(String, Vec<u8>, u64)>,
    /// Swarm overlay networks with whether they are encrypted; `None` on Compose.
    pub overlay_networks: Option<Vec<(String, bool)>>,
    /// The service that may publish ports.
    pub edge_service: String,
}

pub const SECURITY_IDS: &[&str] = &[
    "security.published_ports",
    "security.encrypted_networks",
    "security.env_secrets",
    "security.hardening",
    "security.secret_age",
];

pub fn evaluate_security(facts: &SecurityFacts) -> Vec<Check> {
    let published: Vec<String> = facts
        .containers
        .iter()
        .filter(|(service, ports, _)| service != &facts.edge_service && !ports.is_empty())
        .map(|(_, ports, config)| format!("{} publishes {}", config.name, ports.join(", ")))
        .collect();
    let ports = if published.is_empty() {
        Check::pass("security.published_ports", format!("only {} publishes ports", facts.edge_service))
    } else {
        Check::fail(
            "security.published_ports",
            published.join("; "),
            "stores and roles are reached inside the backend network only: remove the ports (`cometctl diff` shows the \
             hand-made change; `cometctl deploy` puts the rendered one back)",
        )
    };
    let networks = match &facts.overlay_networks {
        None => Check::skip("security.encrypted_networks", "Compose: the networks are bridges on one host"),
        Some(networks) => {
            let plain: Vec<&str> =
                networks.iter().filter(|(_, encrypted)| !encrypted).map(|(name, _)| name.as_str()).collect();
            if plain.is_empty() {
                Check::pass("security.encrypted_networks", format!("{} overlay networks encrypted", networks.len()))
            } else {
                Check::fail(
                    "security.encrypted_networks",
                    format!("overlay networks without encryption: {}", plain.join(", ")),
                    "the rendered stack.yaml sets `driver_opts: encrypted`; `cometctl destroy` and deploy again (a \
                     network's options cannot change in place)",
                )
            }
        }
    };
    let mut leaks = Vec::new();
    for (_, _, config) in &facts.containers {
        for (variable, value) in &config.env {
            let value = value.trim();
            if value.len() < 8 {
                continue;
            }
            for (secret, content, _) in &facts.secrets {
                let content = String::from_utf8_lossy(content);
                let content = content.trim();
                if content.len() >= 8 && value.contains(content) {
                    // The variable and the secret's name only, never the value.
                    leaks.push(format!("{}: {variable} holds secrets/{secret}", config.name));
                }
            }
        }
    }
    let env = if facts.secrets.is_empty() {
        Check::skip("security.env_secrets", "the deployment folder has no secrets to look for")
    } else if leaks.is_empty() {
        Check::pass(
            "security.env_secrets",
            format!(
                "no value of {} secrets in the environment of {} containers",
                facts.secrets.len(),
                facts.containers.len()
            ),
        )
    } else {
        Check::fail(
            "security.env_secrets",
            leaks.join("; "),
            "pass secrets as files (`*_FILE` variables and /run/secrets), as the rendered manifests do, and rotate the \
             exposed ones",
        )
    };
    let mut weaker = Vec::new();
    let (mut checked, mut read_only, mut dropped, mut non_root) = (0, 0, 0, 0);
    for (service, _, config) in &facts.containers {
        let Some((_, user, rendered_read_only, rendered_drop_all)) =
            facts.rendered.iter().find(|(rendered, ..)| rendered == service)
        else {
            continue;
        };
        checked += 1;
        let drops_all = config.cap_drop.iter().any(|cap| cap.eq_ignore_ascii_case("ALL"));
        if *rendered_read_only && !config.read_only {
            weaker.push(format!("{} has a writable root file system", config.name));
        }
        if *rendered_drop_all && !drops_all {
            weaker.push(format!("{} keeps its capabilities", config.name));
        }
        if let Some(user) = user.as_deref().filter(|user| !user.is_empty())
            && config.user != user
        {
            weaker.push(format!("{} runs as `{}`, rendered as `{user}`", config.name, config.user));
        }
        read_only += usize::from(config.read_only);
        dropped += usize::from(drops_all);
        non_root += usize::from(!config.user.is_empty() && !config.user.starts_with("0") && config.user != "root");
    }
    let hardening = if weaker.is_empty() {
        Check::pass(
            "security.hardening",
            format!(
                "{checked} containers as rendered: {read_only} read-only, {dropped} drop all capabilities, {non_root} \
                 run as a non-root user"
            ),
        )
    } else {
        Check::fail(
            "security.hardening",
            weaker.join("; "),
            "`cometctl deploy` recreates them as rendered (read_only, cap_drop: ALL, user)",
        )
    };
    let oldest = facts.secrets.iter().max_by_key(|(_, _, age)| *age);
    let age = match oldest {
        None => Check::skip("security.secret_age", "the deployment folder has no secrets"),
        Some((name, _, seconds)) => Check::against(
            "security.secret_age",
            &THRESHOLDS.secret_age_days,
            seconds / 86_400,
            format!("the oldest secret, secrets/{name}, is {} days old", seconds / 86_400),
            "rotate it (docs/operations/doctor.md#securitysecret_age)",
        ),
    };
    vec![ports, networks, env, hardening, age]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::probe::{HttpHead, TlsExchange};

    fn cert(days: i64) -> (Vec<u8>, i64) {
        let now = 1_800_000_000;
        let mut params = rcgen::CertificateParams::new(vec!["chat.example.com".to_owned()]).expect("params");
        let (year, month, day) = crate::plan::history::civil_from_days((now + days * 86_400 + 3600) / 86_400);
        params.not_after = rcgen::date_time_ymd(i32::try_from(year).expect("year"), month, day);
        let key = rcgen::KeyPair::generate().expect("key");
        (params.self_signed(&key).expect("certificate").der().to_vec(), now)
    }

    fn answers(certificate: Vec<u8>) -> EdgeAnswers {
        let https = HttpHead {
            status: 404,
            headers: vec![("strict-transport-security".into(), "max-age=63072000".into())],
            body: String::new(),
        };
        EdgeAnswers {
            https: Ok(TlsExchange { certificate, version: "TLS 1.3".into(), head: https }),
            tls12: Ok(()),
            tls13: Ok(()),
            http: Ok(HttpHead {
                status: 301,
                headers: vec![("location".into(), "https://chat.example.com/".into())],
                body: String::new(),
            }),
            websocket: Ok(HttpHead {
                status: 401,
                headers: vec![],
                body: r#"{"error":{"code":"AUTH_ERR_EMPTY_AUTH_TOKEN"}}"#.into(),
            }),
        }
    }

    fn moved(checks: &[Check]) -> Vec<(&'static str, Outcome)> {
        checks.iter().filter(|check| check.outcome != Outcome::Pass).map(|check| (check.id, check.outcome)).collect()
    }

    #[test]
    fn the_edge_passes_and_each_break_moves_its_check() {
        let (der, now) = cert(365);
        let expected =
            EdgeExpected { certificate: Some(der.clone()), ssl_protocols: Some("TLSv1.2 TLSv1.3".into()), now };
        assert_eq!(moved(&evaluate_edge(&answers(der.clone()), &expected)), vec![]);
        let (soon, _) = cert(3);
        let expected_soon = EdgeExpected { certificate: Some(soon.clone()), ..expected.clone() };
        assert_eq!(
            moved(&evaluate_edge(&answers(soon), &expected_soon)),
            vec![("edge.certificate_expiry", Outcome::Fail)]
        );
        let (month, _) = cert(20);
        let expected_month = EdgeExpected { certificate: Some(month.clone()), ..expected.clone() };
        assert_eq!(
            moved(&evaluate_edge(&answers(month), &expected_month)),
            vec![("edge.certificate_expiry", Outcome::Warn)]
        );
        let (other, _) = cert(365);
        assert_eq!(moved(&evaluate_edge(&answers(other), &expected)), vec![("edge.https", Outcome::Fail)]);
        let mut plain = answers(der.clone());
        plain.http = Ok(HttpHead { status: 200, ..HttpHead::default() });
        assert_eq!(moved(&evaluate_edge(&plain, &expected)), vec![("edge.redirect", Outcome::Fail)]);
        let mut no_hsts = answers(der.clone());
        if let Ok(exchange) = &mut no_hsts.https {
            exchange.head.headers.clear();
        }
        assert_eq!(moved(&evaluate_edge(&no_hsts, &expected)), vec![("edge.hsts", Outcome::Fail)]);
        let mut bad_gateway = answers(der.clone());
        bad_gateway.websocket = Ok(HttpHead { status: 502, ..HttpHead::default() });
        assert_eq!(moved(&evaluate_edge(&bad_gateway, &expected)), vec![("edge.websocket", Outcome::Fail)]);
        let old = EdgeExpected { ssl_protocols: Some("TLSv1 TLSv1.1 TLSv1.2 TLSv1.3".into()), ..expected.clone() };
        assert_eq!(moved(&evaluate_edge(&answers(der.clone()), &old)), vec![("edge.tls_versions", Outcome::Fail)]);
        let mut down = answers(der);
        down.https = Err("connection refused".into());
        let checks = evaluate_edge(&down, &expected);
        assert_eq!(checks[0].outcome, Outcome::Fail);
        assert!(checks[1..].iter().all(|check| check.outcome == Outcome::Skip));
    }

    fn config(name: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            user: "10001:10001".into(),
            read_only: true,
            cap_drop: vec!["ALL".into()],
            env: vec![("COMET_DATABASE_PASSWORD_FILE".into(), "/run/secrets/db_password".into())],
            running: true,
            ..Default::default()
        }
    }

    fn security() -> SecurityFacts {
        SecurityFacts {
            containers: vec![
                ("nginx".into(), vec!["443:443".into()], config("t-nginx-1")),
                ("api".into(), vec![], config("t-api-1")),
            ],
            rendered: vec![("nginx".into(), None, true, true), ("api".into(), Some("10001:10001".into()), true, true)],
            secrets: vec![("db_password".into(), b"s3cr3t-value-long\n".to_vec(), 10 * 86_400)],
            overlay_networks: None,
            edge_service: "nginx".into(),
        }
    }

    #[test]
    fn security_passes_and_each_break_moves_its_check() {
        assert_eq!(moved(&evaluate_security(&security())), vec![("security.encrypted_networks", Outcome::Skip)]);
        type Change = fn(&mut SecurityFacts);
        let cases: &[(Change, &str, Outcome)] = &[
            (|f| f.containers[1].1.push("16379:6379".into()), "security.published_ports", Outcome::Fail),
            (
                |f| f.containers[1].2.env.push(("COMET_DATABASE_PASSWORD".into(), "s3cr3t-value-long".into())),
                "security.env_secrets",
                Outcome::Fail,
            ),
            (|f| f.containers[1].2.read_only = false, "security.hardening", Outcome::Fail),
            (|f| f.containers[1].2.cap_drop.clear(), "security.hardening", Outcome::Fail),
            (|f| f.containers[1].2.user = "root".into(), "security.hardening", Outcome::Fail),
            (|f| f.secrets[0].2 = 120 * 86_400, "security.secret_age", Outcome::Warn),
            (
                |f| f.overlay_networks = Some(vec![("t_backend".into(), false)]),
                "security.encrypted_networks",
                Outcome::Fail,
            ),
        ];
        for (change, id, expected) in cases {
            let mut facts = security();
            change(&mut facts);
            let checks = evaluate_security(&facts);
            let moved: Vec<(&str, Outcome)> = moved(&checks)
                .into_iter()
                .filter(|(id, outcome)| !(*id == "security.encrypted_networks" && *outcome == Outcome::Skip))
                .collect();
            assert_eq!(moved, vec![(*id, *expected)]);
            let text = format!("{checks:?}");
            assert!(!text.contains("s3cr3t-value-long"), "a secret value reached a check: {text}");
        }
    }
}
