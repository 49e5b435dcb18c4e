//! The Helm chart: strict lint, rendering for every configuration, schema
//! validation of the manifests, and what the objects must say.
//!
//! Over 400 lines: one test per chart rule, sharing the rendering helpers.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{documents, find, have, kinds, ok, root, run, text, validator, xtask};

const CHART: &str = "deploy/helm/session-backend";
/// The production values require a Secret with API keys.
const KEYS_SECRET: &str = "auth.existingSecret=sb-api-keys";

/// Renders the chart with values files (relative to the chart) and `--set`s,
/// validates the manifests, and returns the objects.
fn render(files: &[&str], sets: &[&str]) -> Option<Vec<Value>> {
    if !have("helm", &["version"]) {
        return None;
    }
    let validate = validator()?;
    let mut args = vec!["template".to_owned(), "rel".into(), CHART.into(), "--namespace".into(), "sb".into()];
    for file in files {
        args.extend(["--values".into(), format!("{CHART}/{file}")]);
    }
    for set in sets {
        args.extend(["--set".into(), (*set).to_owned()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let yaml = ok(run("helm", &args));
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("manifests.yaml");
    std::fs::write(&path, &yaml).expect("write manifests");
    let status = Command::new(&validate[0]).args(&validate[1..]).arg(&path).output().expect("validator runs");
    assert!(
        status.status.success(),
        "invalid manifests for {files:?}:\n{}{}",
        text(&status.stdout),
        text(&status.stderr)
    );
    Some(documents(&yaml))
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// Checks the API pods' security and probes, common to every configuration.
fn assert_hardened_api(objects: &[Value]) {
    let deployment = find(objects, "Deployment", None);
    let pod = &deployment["spec"]["template"]["spec"];
    // No pod of the chart gets service-link variables.
    for object in objects {
        let spec =
            if object["kind"] == "Pod" { &object["spec"] } else { &object["spec"]["template"]["spec"] };
        if spec.is_object() && !spec["containers"].is_null() {
            assert_eq!(
                spec["enableServiceLinks"], false,
                "{} {}",
                object["kind"], object["metadata"]["name"]
            );
        }
    }
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("grace");
    let pause = container(deployment, "session-backend")["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop pause");
    let config = find(objects, "ConfigMap", None);
    let drain_ms: u64 = config["data"]["SESSION_BACKEND_SERVER__SHUTDOWN_TIMEOUT_MS"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("drain");
    assert!(
        pause * 1000 + drain_ms < grace * 1000,
        "preStop {pause} s + drain {drain_ms} ms exceed the grace of {grace} s"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert!(annotations["checksum/config"].as_str().is_some_and(|c| c.len() == 64), "{annotations}");
    for c in pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(pod["initContainers"].as_array().into_iter().flatten())
    {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{}", c["name"]);
        assert!(c["resources"]["limits"].is_object(), "{} has no limits", c["name"]);
    }
    let api = container(deployment, "session-backend");
    assert_eq!(api["livenessProbe"]["httpGet"]["path"], "/health/live");
    assert_eq!(api["readinessProbe"]["httpGet"]["path"], "/health/ready");
    assert_eq!(api["ports"][0]["containerPort"], 8001);
    // Migrations run by the binary before the pod serves.
    let init = &pod["initContainers"][0];
    assert_eq!(init["name"], "migrate");
    assert_eq!(init["args"], json!(["migrate", "up"]));
    assert_eq!(init["image"], api["image"]);
    let config = find(objects, "ConfigMap", None);
    assert_eq!(config["data"]["SESSION_BACKEND_DATABASE__AUTO_MIGRATE"], "false");
    // The password only ever comes from a Secret.
    for c in [api, init] {
        let env = c["env"].as_array().expect("env");
        let password = env.iter().find(|e| e["name"] == "POSTGRES_PASSWORD").expect("POSTGRES_PASSWORD");
        assert!(password.get("value").is_none(), "password inlined: {password}");
        assert!(password["valueFrom"]["secretKeyRef"]["name"].is_string());
        assert!(env.iter().all(|e| e["name"] != "DATABASE_URL"), "a URL would carry the password");
    }
    let service = find(objects, "Service", Some("rel-session-backend"));
    assert_eq!(service["spec"]["ports"][0]["port"], 8001);
    assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);
}

#[test]
fn chart_lints_strictly_with_every_values_file() {
    if !have("helm", &["version"]) {
        return;
    }
    for files in [
        &[][..],
        &["values-development.yaml"],
        &["values-production.yaml"],
        &["values-external-postgresql.yaml"],
    ] {
        let mut args = vec!["lint".to_owned(), "--strict".into(), CHART.into()];
        for f in files {
            args.extend(["--values".into(), format!("{CHART}/{f}")]);
        }
        if files.contains(&"values-production.yaml") {
            args.extend(["--set".into(), KEYS_SECRET.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(run("helm", &args));
    }
    // The strict schema refuses unknown and ill-typed values.
    let bad = run("helm", &["template", "rel", CHART, "--set", "sessionBackend.replicas=3"]);
    assert!(
        !bad.status.success() && text(&bad.stderr).contains("additional properties"),
        "{}",
        text(&bad.stderr)
    );
    let bad = run("helm", &["template", "rel", CHART, "--set", "sessionBackend.config.logLevel=loud"]);
    assert!(!bad.status.success(), "unknown log level accepted");
}

/// Every API pod's pool at once (HPA maximum, plus one while rolling) fits
/// in the in-chart PostgreSQL's max_connections, which is set explicitly.
fn assert_pools_fit(objects: &[Value]) {
    let deployment = find(objects, "Deployment", None);
    let config = find(objects, "ConfigMap", None);
    let pool: u64 = config["data"]["SESSION_BACKEND_DATABASE__MAX_CONNECTIONS"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("pool size");
    let pods = objects
        .iter()
        .find(|o| o["kind"] == "HorizontalPodAutoscaler")
        .map_or_else(|| deployment["spec"]["replicas"].as_u64(), |hpa| hpa["spec"]["maxReplicas"].as_u64())
        .expect("pods")
        + 1;
    let statefulset = find(objects, "StatefulSet", None);
    let args = &statefulset["spec"]["template"]["spec"]["containers"][0]["args"];
    let max: u64 = args
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|a| a.as_str()?.strip_prefix("max_connections=")?.parse().ok())
        .expect("max_connections set explicitly");
    assert!(pods * (pool + 1) + 8 <= max, "{pods} pods x ({pool} + 1) + 8 > max_connections {max}");
}

#[test]
fn pools_that_would_exhaust_postgresql_refuse_to_render() {
    if !have("helm", &["version"]) {
        return;
    }
    let refused = run("helm", &["template", "rel", CHART, "--set", "autoscaling.enabled=true"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("postgresql.primary.maxConnections"), "{}", text(&refused.stderr));
    let fits = run(
        "helm",
        &[
            "template",
            "rel",
            CHART,
            "--set",
            "autoscaling.enabled=true",
            "--set",
            "postgresql.primary.maxConnections=130",
        ],
    );
    assert!(fits.status.success(), "{}", text(&fits.stderr));
}

#[test]
fn default_values_render_a_hardened_release_with_in_cluster_postgresql() {
    let Some(objects) = render(&[], &[]) else { return };
    assert_hardened_api(&objects);
    assert_pools_fit(&objects);
    let deployment = find(&objects, "Deployment", None);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let affinity = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert!(affinity["preferredDuringSchedulingIgnoredDuringExecution"].is_array(), "{affinity}");
    let statefulset = find(&objects, "StatefulSet", None);
    let pg = &statefulset["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(pg["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "8Gi"
    );
    let secret = find(&objects, "Secret", None);
    assert!(secret["data"]["password"].as_str().is_some_and(|p| !p.is_empty()));
    assert!(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/secret"].is_string());
    for absent in ["HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "NetworkPolicy"] {
        assert!(!kinds(&objects).contains(&absent.to_owned()), "{absent} rendered by default");
    }
}

#[test]
fn development_values_are_small_and_verbose() {
    let Some(objects) = render(&["values-development.yaml"], &[]) else { return };
    assert_hardened_api(&objects);
    assert_pools_fit(&objects);
    let deployment = find(&objects, "Deployment", None);
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(find(&objects, "ConfigMap", None)["data"]["LOG_LEVEL"], "debug");
    assert_eq!(container(deployment, "session-backend")["resources"]["limits"]["memory"], "128Mi");
}

#[test]
fn production_values_scale_protect_and_isolate() {
    let Some(objects) = render(&["values-production.yaml"], &[KEYS_SECRET]) else { return };
    assert_hardened_api(&objects);
    assert_pools_fit(&objects);
    let deployment = find(&objects, "Deployment", None);
    assert!(deployment["spec"].get("replicas").is_none(), "the HPA owns the replica count");
    let api_labels = deployment["spec"]["selector"]["matchLabels"].clone();
    let hard = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert!(hard["requiredDuringSchedulingIgnoredDuringExecution"].is_array(), "{hard}");
    let hpa = find(&objects, "HorizontalPodAutoscaler", None);
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 10);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"]);
    let metrics: Vec<_> = hpa["spec"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["resource"]["name"].clone())
        .collect();
    assert_eq!(metrics, [json!("cpu"), json!("memory")]);
    let pdb = find(&objects, "PodDisruptionBudget", None);
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], api_labels);
    let ingress = find(&objects, "Ingress", None);
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "session-backend-tls");
    assert_eq!(ingress["spec"]["tls"][0]["hosts"], json!(["sessions.example.com"]));
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "rel-session-backend"
    );
    let statefulset = find(&objects, "StatefulSet", None);
    let pg_labels = statefulset["spec"]["selector"]["matchLabels"].clone();
    assert_eq!(
        statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "50Gi"
    );
    // API ↔ PostgreSQL only; the API reachable from the ingress controller.
    let api_policy = find(&objects, "NetworkPolicy", Some("rel-session-backend"));
    assert_eq!(api_policy["spec"]["podSelector"]["matchLabels"], api_labels);
    assert_eq!(api_policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let from = &api_policy["spec"]["ingress"][0]["from"][0];
    assert_eq!(from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "ingress-nginx");
    assert_eq!(api_policy["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"], pg_labels);
    assert_eq!(api_policy["spec"]["egress"][0]["ports"][0]["port"], 5432);
    let pg_policy = find(&objects, "NetworkPolicy", Some("rel-session-backend-postgresql"));
    assert_eq!(pg_policy["spec"]["podSelector"]["matchLabels"], pg_labels);
    assert_eq!(pg_policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"], api_labels);
    assert_eq!(pg_policy["spec"]["egress"], json!([]));
    // API keys: the whole Secret mounted read-only (so updates reach the
    // pod), the server told where the file is.
    let pod = &deployment["spec"]["template"]["spec"];
    let api = container(deployment, "session-backend");
    let keys_file =
        api["env"].as_array().expect("env").iter().find(|e| e["name"] == "SESSION_BACKEND_AUTH__KEYS_FILE");
    assert_eq!(keys_file.expect("keys file variable")["value"], "/etc/session-backend/api-keys/keys");
    let mount = api["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["name"] == "api-keys")
        .expect("mount");
    assert_eq!(mount["readOnly"], true);
    assert!(mount.get("subPath").is_none(), "a subPath mount never sees Secret updates");
    let volume =
        pod["volumes"].as_array().expect("volumes").iter().find(|v| v["name"] == "api-keys").expect("volume");
    assert_eq!(volume["secret"]["secretName"], "sb-api-keys");
}

#[test]
fn production_refuses_to_render_without_api_keys() {
    if !have("helm", &["version"]) {
        return;
    }
    let refused =
        run("helm", &["template", "rel", CHART, "--values", &format!("{CHART}/values-production.yaml")]);
    assert!(!refused.status.success(), "production rendered without API keys");
    assert!(text(&refused.stderr).contains("auth.existingSecret is required"), "{}", text(&refused.stderr));
    // Other values leave keys optional, and set none.
    let Some(objects) = render(&[], &[]) else { return };
    let api = container(find(&objects, "Deployment", None), "session-backend");
    assert!(!api.to_string().contains("AUTH__KEYS_FILE"), "{api}");
}

#[test]
fn external_database_renders_no_statefulset_and_reads_the_existing_secret() {
    let Some(objects) = render(&["values-external-postgresql.yaml"], &["networkPolicy.enabled=true"]) else {
        return;
    };
    assert_hardened_api(&objects);
    let kinds = kinds(&objects);
    assert!(!kinds.contains(&"StatefulSet".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"Secret".to_owned()), "existingSecret is set: the chart must not create one");
    let deployment = find(&objects, "Deployment", None);
    let env = container(deployment, "session-backend")["env"].as_array().expect("env").clone();
    let get = |name: &str| env.iter().find(|e| e["name"] == name).cloned().unwrap_or(Value::Null);
    assert_eq!(get("POSTGRES_HOST")["value"], "sessions.cluster-abc.eu-west-1.rds.amazonaws.com");
    assert_eq!(
        get("POSTGRES_PASSWORD")["valueFrom"]["secretKeyRef"],
        json!({"name": "session-backend-db", "key": "password"})
    );
    let policy = find(&objects, "NetworkPolicy", None);
    assert_eq!(policy["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"], "10.0.0.0/8");
    // Without a host the chart refuses to render.
    if have("helm", &["version"]) {
        let missing = run(
            "helm",
            &[
                "template",
                "rel",
                CHART,
                "--set",
                "postgresql.enabled=false",
                "--set",
                "externalPostgresql.password=x",
            ],
        );
        assert!(!missing.status.success() && text(&missing.stderr).contains("externalPostgresql.host"));
    }
}

#[test]
fn a_pooler_serves_the_api_pods_and_migrations_go_past_it() {
    let sets = ["networkPolicy.enabled=true", "pooler.enabled=true", "pooler.host=pgbouncer.db.svc"];
    let Some(objects) = render(&[], &[sets[0], sets[1], sets[2], "pooler.podSelector.app=pgbouncer"]) else {
        return;
    };
    assert_hardened_api(&objects);
    let deployment = find(&objects, "Deployment", None);
    let env_of = |container: &Value| {
        let env = container["env"].as_array().expect("env").clone();
        move |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone())
    };
    let api = env_of(container(deployment, "session-backend"));
    assert_eq!(api("POSTGRES_HOST"), Some(json!("pgbouncer.db.svc")));
    assert_eq!(api("POSTGRES_PORT"), Some(json!("6432")));
    assert_eq!(api("SESSION_BACKEND_DATABASE__POOLER"), Some(json!("transaction")));
    assert_eq!(
        api("SESSION_BACKEND_DATABASE__POSTGRES__DIRECT_HOST"),
        Some(json!("rel-session-backend-postgresql"))
    );
    assert_eq!(api("SESSION_BACKEND_DATABASE__POSTGRES__DIRECT_PORT"), Some(json!("5432")));
    let init = &deployment["spec"]["template"]["spec"]["initContainers"][0];
    let migrate = env_of(init);
    assert_eq!(
        migrate("POSTGRES_HOST"),
        Some(json!("rel-session-backend-postgresql")),
        "migrations skip the pooler"
    );
    assert_eq!(migrate("SESSION_BACKEND_DATABASE__POOLER"), None);
    let policies: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "NetworkPolicy").collect();
    let api_policy =
        policies.iter().find(|p| p["metadata"]["name"] == "rel-session-backend").expect("API policy");
    let to_pooler = api_policy["spec"]["egress"]
        .as_array()
        .expect("egress")
        .iter()
        .find(|rule| rule["ports"][0]["port"] == 6432);
    assert_eq!(
        to_pooler.expect("egress to the pooler")["to"][0]["podSelector"]["matchLabels"],
        json!({"app": "pgbouncer"})
    );
    let pg_policy = policies
        .iter()
        .find(|p| p["metadata"]["name"] == "rel-session-backend-postgresql")
        .expect("PG policy");
    assert_eq!(
        pg_policy["spec"]["ingress"][0]["from"][1]["podSelector"]["matchLabels"],
        json!({"app": "pgbouncer"})
    );
    // The pods' pools no longer count against PostgreSQL, the pooler's does.
    assert!(
        render(
            &[],
            &[sets[1], sets[2], "sessionBackend.replicaCount=20", "sessionBackend.config.maxConnections=50"]
        )
        .is_some()
    );
    if have("helm", &["version"]) {
        let too_many = run(
            "helm",
            &[
                "template",
                "rel",
                CHART,
                "--set",
                sets[1],
                "--set",
                sets[2],
                "--set",
                "pooler.maxServerConnections=95",
            ],
        );
        assert!(!too_many.status.success() && text(&too_many.stderr).contains("pooler.maxServerConnections"));
        let no_host = run("helm", &["template", "rel", CHART, "--set", sets[1]]);
        assert!(!no_host.status.success() && text(&no_host.stderr).contains("pooler.host"));
    }
}

#[test]
fn in_cluster_existing_secret_is_used_and_never_inlined() {
    let Some(objects) = render(
        &[],
        &["postgresql.auth.existingSecret=pg-creds", "postgresql.auth.secretKeys.passwordKey=pw"],
    ) else {
        return;
    };
    assert!(!kinds(&objects).contains(&"Secret".to_owned()));
    let statefulset = find(&objects, "StatefulSet", None);
    let pg_env =
        statefulset["spec"]["template"]["spec"]["containers"][0]["env"].as_array().expect("env").clone();
    let pw = pg_env.iter().find(|e| e["name"] == "POSTGRES_PASSWORD").expect("password");
    assert_eq!(pw["valueFrom"]["secretKeyRef"], json!({"name": "pg-creds", "key": "pw"}));
}

#[test]
fn deploy_dry_run_renders_and_validates_both_environments() {
    if !have("helm", &["version"]) || validator().is_none() {
        return;
    }
    for env in ["development", "production"] {
        let out = xtask()
            .args(["deploy", "--env", env, "--dry-run", "--release", "sb", "--image-tag", "1.2.3"])
            .args(if env == "production" { &["--set", KEYS_SECRET][..] } else { &[] })
            .current_dir(root())
            .output()
            .expect("xtask");
        assert!(out.status.success(), "{env}: {}", text(&out.stderr));
        let rendered =
            std::fs::read_to_string(root().join(format!("target/deploy/sb-{env}.yaml"))).expect("manifests");
        let objects = documents(&rendered);
        let deployment = find(&objects, "Deployment", None);
        assert_eq!(container(deployment, "session-backend")["image"], "session-backend:1.2.3");
    }
}

#[test]
fn metrics_are_scrapable_as_configured() {
    // Defaults: scrape annotations on the pods, /metrics behind a key.
    let Some(objects) = render(&[], &[]) else { return };
    let deployment = find(&objects, "Deployment", None);
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(annotations["prometheus.io/port"], "8001");
    let config = find(&objects, "ConfigMap", None);
    assert_eq!(config["data"]["SESSION_BACKEND_METRICS__PUBLIC"], "false");
    assert!(!kinds(&objects).contains(&"ServiceMonitor".to_owned()));

    // Production: no annotations (scrapes need a key); a ServiceMonitor sends one.
    let Some(objects) = render(
        &["values-production.yaml"],
        &[
            KEYS_SECRET,
            "metrics.existingSecret=sb-metrics-keys",
            "metrics.serviceMonitor.enabled=true",
            "metrics.serviceMonitor.bearerTokenSecret.name=sb-scrape",
            "metrics.serviceMonitor.bearerTokenSecret.key=key",
            "metrics.serviceMonitor.labels.release=prometheus",
            "networkPolicy.prometheus.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
        ],
    ) else {
        return;
    };
    let deployment = find(&objects, "Deployment", None);
    assert!(deployment["spec"]["template"]["metadata"]["annotations"].get("prometheus.io/scrape").is_none());
    // The operators' metrics keys are mounted whole, like the API keys.
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = container["env"].as_array().expect("env");
    assert!(
        env.iter().any(|e| e["name"] == "SESSION_BACKEND_METRICS__KEYS_FILE"
            && e["value"] == "/etc/session-backend/metrics-keys/keys"),
        "{env:?}"
    );
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    assert!(mounts.iter().any(|m| m["name"] == "metrics-keys" && m.get("subPath").is_none()), "{mounts:?}");
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert!(volumes.iter().any(|v| v["secret"]["secretName"] == "sb-metrics-keys"), "{volumes:?}");
    let monitor = find(&objects, "ServiceMonitor", None);
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        find(&objects, "Service", Some("rel-session-backend"))["spec"]["selector"]
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!((endpoint["port"].clone(), endpoint["path"].clone()), (json!("http"), json!("/metrics")));
    assert_eq!(endpoint["authorization"]["credentials"], json!({"name": "sb-scrape", "key": "key"}));
    let policy = find(&objects, "NetworkPolicy", Some("rel-session-backend"));
    let peers = policy["spec"]["ingress"][0]["from"].as_array().expect("peers");
    assert!(
        peers
            .iter()
            .any(|p| p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"),
        "{peers:?}"
    );
}

#[test]
fn the_ingress_hosts_and_listed_names_are_answered_with_keys_off() {
    let Some(objects) = render(&[], &[]) else { return };
    let hosts = &find(&objects, "ConfigMap", None)["data"]["SESSION_BACKEND_SERVER__ALLOWED_HOSTS"];
    assert_eq!(hosts, "rel-session-backend.sb", "the service's short name in its namespace");
    let sets = [
        "ingress.enabled=true",
        "ingress.hosts[0].host=*.sessions.example.org",
        "ingress.hosts[0].paths[0].path=/",
        "ingress.hosts[0].paths[0].pathType=Prefix",
        "sessionBackend.config.allowedHosts={.corp.example}",
    ];
    let Some(objects) = render(&[], &sets) else { return };
    let hosts = &find(&objects, "ConfigMap", None)["data"]["SESSION_BACKEND_SERVER__ALLOWED_HOSTS"];
    assert_eq!(hosts, "rel-session-backend.sb,.corp.example,.sessions.example.org");
}
