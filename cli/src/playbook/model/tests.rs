use super::*;

const FILE: &str = "drill.yaml";

fn error_of(text: &str) -> String {
    parse(FILE, text).expect_err("malformed").to_string()
}

#[test]
fn every_kind_of_step_reads_with_literals_and_inputs() {
    let text = r#"
name: drill
description: every step
inputs:
  - { name: to, description: users }
  - { name: wait, description: settle, default: 1m }
steps:
  - doctor: { only: [stores, host.nofile], skip: [kafka.topics], allow: pass }
  - backup: { only: [tidb, config] }
  - scale: { mau: "${to}", replicas: { api: 3, gateway: "${to}" } }
  - deploy: {}
  - wait-healthy: { timeout: 90s }
  - rolling-restart: { service: gateway }
  - pause: { for: "${wait}", reason: settle }
  - confirm: go on?
"#;
    let playbook = parse(FILE, text).expect("reads");
    let kinds: Vec<&str> = playbook.steps.iter().map(Step::kind).collect();
    assert_eq!(kinds, ["doctor", "backup", "scale", "deploy", "wait-healthy", "rolling-restart", "pause", "confirm"]);
    let Step::Scale(scale) = &playbook.steps[2] else { panic!("a scale step") };
    assert_eq!(scale.mau, Some(Param::Input("to".to_owned())));
    assert_eq!(scale.replicas[&Scalable(ServiceKey::Api)], Param::Value(3));
    assert_eq!(playbook.steps[2].title(), "scale --mau ${to} api=3 gateway=${to}");
    let Step::WaitHealthy(wait) = &playbook.steps[4] else { panic!("a wait step") };
    assert_eq!(wait.timeout, Param::Value(Span(Duration::from_secs(90))));
    let inputs = BTreeMap::from([("to".to_owned(), "25k".to_owned()), ("wait".to_owned(), "1m".to_owned())]);
    assert_eq!(scale.mau.as_ref().expect("mau").resolve(&inputs).map(Mau::get), Ok(25_000));
    // An input that does not parse as what the step takes is named with its value.
    let error = scale.replicas[&Scalable(ServiceKey::Gateway)].resolve(&inputs).expect_err("25k is not a count");
    assert!(error.contains("input `to` = `25k`"), "{error}");
}

#[test]
fn malformed_playbooks_name_the_file_line_and_column() {
    let base = "name: drill\ndescription: d\nsteps:\n";
    let cases = [
        ("  - reboot: {}\n", "4:"),
        ("  - doctor: { only: [host.nofiles] }\n", "4:"),
        ("  - pause: { for: 10 minutes, reason: r }\n", "4:"),
        ("  - scale: { replicas: { tikv: 3 } }\n", "4:"),
        ("  - scale: { mau: lots }\n", "4:"),
        ("  - backup: { only: [everything] }\n", "4:"),
        ("  - rotate-secret: { secret: db_password }\n", "4:"),
        ("  - doctor: {}\n  - wait-healthy: { timeout: 1m, extra: 1 }\n", "5:"),
        ("  - doctor: {}\n  - scale: { mau: \"${to}\" }\n", "5:"),
    ];
    for (steps, at) in cases {
        let error = error_of(&format!("{base}{steps}"));
        assert!(error.starts_with(&format!("{FILE}:{at}")), "{steps:?} → {error}");
    }
    assert!(error_of(&format!("{base}  - scale: {{ mau: \"${{to}}\" }}\n")).contains("not an input (inputs: none)"));
    assert!(error_of("name: drill\ndescription: d\nsteps: []\n").contains("needs at least one step"));
    assert!(error_of("name: two words\ndescription: d\nsteps:\n  - confirm: ok\n").starts_with("drill.yaml:1:1"));
    assert!(
        error_of("name: drill\ndescription: d\nunknown: 1\nsteps:\n  - confirm: ok\n").starts_with("drill.yaml:3:")
    );
}

#[test]
fn durations_show_as_written() {
    assert_eq!("90s".parse::<Span>().map(|span| span.to_string()), Ok("1m30s".to_owned()));
    assert_eq!("10m".parse::<Span>().map(|span| span.to_string()), Ok("10m".to_owned()));
    assert!("-1s".parse::<Span>().is_err());
}
