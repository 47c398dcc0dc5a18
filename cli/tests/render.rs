use serde_json::{Value, json};

use crate::support::{Deployment, cometctl, init, tree, workspace};

#[test]
fn render_is_deterministic_and_never_touches_secrets() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "100k"]);
    let secrets = tree(&dir.join("secrets"));
    let spec = std::fs::read(dir.join("cometctl.yaml")).expect("spec");

    cometctl(&dir, &["render", "--target", "all"]).success();
    let first = tree(&dir.join("rendered"));
    let second_run = cometctl(&dir, &["render", "--target", "all"]).success();
    let second = tree(&dir.join("rendered"));
    assert_eq!(first, second, "two renders of one spec differ");
    assert!(second_run.stderr.contains("no changes"), "{}", second_run.stderr);

    // The same spec in another folder renders the same bytes: nothing depends on time or place.
    let other_root = workspace();
    let other = other_root.path().join("deploy");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("cometctl.yaml"), &spec).expect("copy spec");
    cometctl(&other, &["render", "--target", "all"]).success();
    assert_eq!(tree(&other.join("rendered")), first, "rendering depends on the folder");

    assert_eq!(tree(&dir.join("secrets")), secrets, "render changed secrets");
    assert_eq!(std::fs::read(dir.join("cometctl.yaml")).expect("spec"), spec, "render changed the spec");
    for (path, bytes) in &first {
        for (name, value) in &secrets {
            let value = String::from_utf8_lossy(value).trim().to_owned();
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains(&value), "secret {name} inlined into rendered/{path}");
        }
    }
}

#[test]
fn render_writes_what_each_target_needs() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "100k"]);
    cometctl(&dir, &["render", "--target", "all"]).success();
    let all: Vec<String> = tree(&dir.join("rendered")).into_iter().map(|(path, _)| path).collect();
    for expected in
        ["compose.yaml", "stack.yaml", "nginx/nginx.conf", "prometheus/prometheus.yml", "prometheus/alerts.yml"]
    {
        assert!(all.iter().any(|path| path == expected), "{expected} missing from {all:?}");
    }
    assert!(all.iter().any(|path| path.starts_with("k8s/")), "{all:?}");
    assert!(all.iter().any(|path| path.starts_with("grafana/dashboards/")), "{all:?}");

    // Rendering one target replaces the folder: files of other targets are removed and reported.
    let run = cometctl(&dir, &["render", "--target", "k8s"]).success();
    assert!(run.stderr.contains("removed"), "{}", run.stderr);
    let k8s_only: Vec<String> = tree(&dir.join("rendered")).into_iter().map(|(path, _)| path).collect();
    assert!(k8s_only.iter().all(|path| path.starts_with("k8s/")), "{k8s_only:?}");
}

#[test]
fn a_failed_render_keeps_the_previous_one() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    cometctl(&dir, &["render"]).success();
    let before = tree(&dir.join("rendered"));

    let broken = root.path().join("templates/nginx");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join("nginx.conf.j2"), "{{ no_such_variable }}\n").expect("write");
    let run = cometctl(&dir, &["render", "--templates", &root.path().join("templates").to_string_lossy()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("nginx/nginx.conf.j2") && run.stderr.contains("undefined"), "{}", run.stderr);
    assert_eq!(tree(&dir.join("rendered")), before, "a failed render changed rendered/");
    let leftovers: Vec<_> =
        std::fs::read_dir(&dir).expect("read_dir").filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert!(leftovers.iter().all(|name| !name.to_string_lossy().contains(".tmp")), "{leftovers:?}");
}

#[test]
fn template_overrides_replace_only_what_they_name() {
    let root = workspace();
    let dir = init(root.path(), &["--mau", "10k"]);
    let overrides = root.path().join("templates/nginx");
    std::fs::create_dir_all(&overrides).expect("mkdir");
    std::fs::write(overrides.join("nginx.conf.j2"), "# custom edge for {{ domain }}\n").expect("write");
    cometctl(&dir, &["render", "--templates", &root.path().join("templates").to_string_lossy()]).success();
    let nginx = std::fs::read_to_string(dir.join("rendered/nginx/nginx.conf")).expect("nginx.conf");
    assert_eq!(nginx, "# custom edge for chat.example.com\n");
    assert!(dir.join("rendered/stack.yaml").is_file(), "embedded templates still render");
}

#[test]
fn published_ports_follow_the_spec_on_compose_and_swarm_only() {
    let deployment = Deployment::rendered_with(&["--mau", "10k"], |spec| {
        let defaults = "  http_port: 80\n  https_port: 443\n";
        assert!(spec.contains(defaults), "init writes both ports:\n{spec}");
        spec.replace(defaults, "  http_port: 8080\n  https_port: 8443\n")
    });
    let read = |path: &str| std::fs::read_to_string(deployment.rendered_dir().join(path)).expect(path);
    let yaml = |path: &str| -> Value { serde_saphyr::from_str(&read(path)).expect(path) };

    // The host side moves; NGINX keeps listening on 80 and 443 inside its container.
    let compose = yaml("compose.yaml");
    assert_eq!(compose["services"]["nginx"]["ports"], json!(["8080:80", "8443:443"]));
    let stack = yaml("stack.yaml");
    let published: Vec<(Value, Value)> = stack["services"]["nginx"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|port| (port["target"].clone(), port["published"].clone()))
        .collect();
    assert_eq!(published, [(json!(80), json!(8080)), (json!(443), json!(8443))]);
    let nginx = read("nginx/nginx.conf");
    assert!(nginx.contains("listen 80 default_server;") && nginx.contains("listen 443 ssl"), "{nginx}");
    assert!(nginx.contains("return 301 https://chat.example.com:8443$request_uri;"), "{nginx}");

    // Browsers put a non-default port into Origin; behind the Kubernetes Ingress the site stays on 443.
    for (file, stack) in [("compose.yaml", &compose), ("stack.yaml", &stack)] {
        let origins = &stack["services"]["gateway"]["environment"]["COMET_GATEWAY_ALLOWED_ORIGINS"];
        assert_eq!(origins, "https://chat.example.com:8443", "{file}");
    }
    let k8s_env = read("k8s/10-config.yaml");
    assert!(k8s_env.contains("COMET_GATEWAY_ALLOWED_ORIGINS: 'https://chat.example.com'\n"), "{k8s_env}");
    assert!(!k8s_env.contains("8443") && !read("k8s/50-ingress.yaml").contains("8443"), "k8s ignores the ports");
}

#[test]
fn integrations_reach_every_target_and_the_custom_api_password_only_as_a_file() {
    let plain = Deployment::rendered(&["--mau", "10k"]);
    let deployment = Deployment::rendered_with(&["--mau", "10k"], |spec| {
        crate::validators::with_integrations(&crate::validators::with_moderation(spec))
    });
    let read = |deployment: &Deployment, path: &str| {
        std::fs::read_to_string(deployment.rendered_dir().join(path)).expect(path)
    };
    let yaml =
        |deployment: &Deployment, path: &str| -> Value { serde_saphyr::from_str(&read(deployment, path)).expect(path) };
    let expected = [
        ("COMET_WEBHOOKS_ALLOW_HOSTS", "hooks.internal,10.20.0.0/16"),
        ("COMET_MODERATION_CUSTOM_API_URL", "https://moderation.internal/verdict"),
        ("COMET_MODERATION_CUSTOM_API_USERNAME", "comet"),
        ("COMET_MODERATION_CUSTOM_API_TIMEOUT_MS", "2000"),
    ];
    for file in ["compose.yaml", "stack.yaml"] {
        let rendered = yaml(&deployment, file);
        let environment = &rendered["services"]["moderation"]["environment"];
        for (name, value) in expected {
            assert_eq!(environment[name], value, "{file}: {name}");
        }
        assert_eq!(
            environment["COMET_MODERATION_CUSTOM_API_PASSWORD_FILE"], "/run/secrets/moderation_custom_api_password",
            "{file}"
        );
        assert!(environment.get("COMET_MODERATION_CUSTOM_API_PASSWORD").is_none(), "{file}: never the value");
        let secrets = rendered["services"]["moderation"]["secrets"].to_string();
        assert!(secrets.contains("moderation_custom_api_password"), "{file}: {secrets}");
        assert!(rendered["secrets"].get("moderation_custom_api_password").is_some(), "{file}");
        // A default spec sets none of it.
        let default = yaml(&plain, file);
        let text = read(&plain, file);
        assert!(!text.contains("CUSTOM_API") && !text.contains("ALLOW_HOSTS"), "{file}: {default}");
    }
    let config = read(&deployment, "k8s/10-config.yaml");
    for (name, value) in expected {
        assert!(config.contains(&format!("{name}: '{value}'")), "k8s: {name}\n{config}");
    }
    let k8s_moderation = read(&deployment, "k8s/40-moderation.yaml");
    assert!(k8s_moderation.contains("/run/secrets/moderation_custom_api_password"), "{k8s_moderation}");

    // Deploying needs the password file, which only the operator can write: the refusal names it and what
    // to put in it, before anything reaches the Engine.
    assert!(!deployment.dir.join("secrets/moderation_custom_api_password").exists(), "init cannot know it");
    let diff = cometctl(&deployment.dir, &["diff", "compose"]);
    assert_eq!(diff.code, 2, "stdout:\n{}\nstderr:\n{}", diff.stdout, diff.stderr);
    assert!(diff.stderr.contains("secrets/moderation_custom_api_password does not exist"), "{}", diff.stderr);
    assert!(diff.stderr.contains("Custom API's password"), "{}", diff.stderr);
}
