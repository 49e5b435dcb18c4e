//! The chart's pods, run the way a kubelet would run them. No cluster can
//! run here, so this is the closest real thing: the chart is rendered with
//! the default release name and each values file, and the real image runs
//! on Docker with exactly what the rendered pod spec gives it: every key of
//! its ConfigMap and Secret references, the service-link variables of every
//! Service the chart renders (Kubernetes injects them unless told not to),
//! the securityContext's user, a read-only root filesystem, dropped
//! capabilities, its volumes and memory limits; the init container first,
//! then the API container, against the PostgreSQL pod of the render (or an
//! external one under the values' host name). Both must come up, and the
//! probe paths of the manifest must answer 200. Passwords and database
//! names are ordinary ones that are not text to a YAML or env parser
//! (`123456`, `2024`, `true`).
//!
//! Over 400 lines: the simulated kubelet (environment, users, read-only
//! root, probes) is one fixture that every test here needs.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{
    BASE_IMAGE, BUILDER_IMAGE, Cleanup, POSTGRES_IMAGE, answers_200, built_images, documents, have, image,
    ok, root, run, text, xtask,
};

const CHART: &str = "deploy/helm/session-backend";
const RELEASE: &str = "session-backend";

fn docker(args: &[&str]) -> String {
    ok(run("docker", args)).trim().to_owned()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind)
}

fn base64_decode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    String::from_utf8(out).expect("utf-8")
}

/// What a pod sees of the cluster: Secrets by name, the rendered Services.
struct Cluster {
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    service_links: Vec<(String, String)>,
}

impl Cluster {
    fn new(objects: &[Value], extra_secrets: &[(&str, &str, &str)]) -> Self {
        let mut secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut config_maps = BTreeMap::new();
        for object in objects {
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let data = object["data"].as_object().cloned().unwrap_or_default();
            match object["kind"].as_str() {
                Some("Secret") => {
                    let decoded =
                        data.iter().map(|(k, v)| (k.clone(), base64_decode(v.as_str().unwrap_or_default())));
                    secrets.insert(name, decoded.collect());
                }
                Some("ConfigMap") => {
                    let plain =
                        data.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()));
                    config_maps.insert(name, plain.collect());
                }
                _ => {}
            }
        }
        for (name, key, value) in extra_secrets {
            secrets.entry((*name).to_owned()).or_default().insert((*key).to_owned(), (*value).to_owned());
        }
        // Service links as the kubelet writes them, one made-up cluster IP per Service.
        let mut service_links = vec![
            ("KUBERNETES_SERVICE_HOST".to_owned(), "10.96.0.1".to_owned()),
            ("KUBERNETES_SERVICE_PORT".to_owned(), "443".to_owned()),
            ("KUBERNETES_PORT".to_owned(), "tcp://10.96.0.1:443".to_owned()),
        ];
        for (i, service) in objects.iter().filter(|o| o["kind"] == "Service").enumerate() {
            let name = service["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_uppercase()
                .replace('-', "_");
            let ip = format!("10.96.1.{}", i + 10);
            let ports = service["spec"]["ports"].as_array().cloned().unwrap_or_default();
            for (j, port) in ports.iter().enumerate() {
                let number = port["port"].as_u64().unwrap_or_default();
                let proto = port["protocol"].as_str().unwrap_or("TCP").to_owned();
                let link = format!("{}://{ip}:{number}", proto.to_ascii_lowercase());
                if j == 0 {
                    service_links.push((format!("{name}_SERVICE_HOST"), ip.clone()));
                    service_links.push((format!("{name}_SERVICE_PORT"), number.to_string()));
                    service_links.push((format!("{name}_PORT"), link.clone()));
                }
                if let Some(port_name) = port["name"].as_str() {
                    let port_name = port_name.to_ascii_uppercase().replace('-', "_");
                    service_links.push((format!("{name}_SERVICE_PORT_{port_name}"), number.to_string()));
                }
                let prefix = format!("{name}_PORT_{number}_{proto}");
                service_links.push((prefix.clone(), link));
                service_links.push((format!("{prefix}_PROTO"), proto.to_ascii_lowercase()));
                service_links.push((format!("{prefix}_PORT"), number.to_string()));
                service_links.push((format!("{prefix}_ADDR"), ip.clone()));
            }
        }
        Self { secrets, config_maps, service_links }
    }

    /// A container's environment in the kubelet's order of precedence:
    /// service links, then `envFrom`, then `env`.
    fn environment(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self.service_links.iter().cloned().collect();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            if let Some(name) = source["configMapRef"]["name"].as_str() {
                env.extend(
                    self.config_maps.get(name).cloned().expect("configMapRef names a rendered ConfigMap"),
                );
            }
            if let Some(name) = source["secretRef"]["name"].as_str() {
                env.extend(self.secrets.get(name).cloned().expect("secretRef names a known Secret"));
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("name").to_owned();
            let value = match (&var["value"], &var["valueFrom"]["secretKeyRef"]) {
                (Value::String(value), _) => value.clone(),
                (_, reference) if reference.is_object() => {
                    let secret = self
                        .secrets
                        .get(reference["name"].as_str().expect("secret"))
                        .expect("the Secret exists");
                    secret.get(reference["key"].as_str().expect("key")).expect("the key exists").clone()
                }
                other => panic!("unsupported env source for {name}: {other:?}"),
            };
            env.insert(name, value);
        }
        env
    }
}

/// `docker run` flags for `container` of `pod`, as a kubelet would run it;
/// Secret volumes are written below `volumes` first.
fn pod_flags(
    pod: &Value,
    container: &Value,
    env: &BTreeMap<String, String>,
    cluster: &Cluster,
    volumes: &Path,
) -> Vec<String> {
    let security = &container["securityContext"];
    let user = |field: &str| security[field].as_u64().or_else(|| pod["securityContext"][field].as_u64());
    let mut flags = Vec::new();
    if let (Some(uid), gid) = (user("runAsUser"), user("runAsGroup")) {
        flags.extend(["--user".to_owned(), format!("{uid}:{}", gid.unwrap_or(uid))]);
    }
    if security["readOnlyRootFilesystem"] == true {
        flags.push("--read-only".into());
    }
    if security["capabilities"]["drop"].as_array().is_some_and(|d| d.iter().any(|c| c == "ALL")) {
        flags.extend(["--cap-drop".to_owned(), "ALL".to_owned()]);
    }
    if security["allowPrivilegeEscalation"] == false {
        flags.extend(["--security-opt".to_owned(), "no-new-privileges".to_owned()]);
    }
    if let Some(memory) = container["resources"]["limits"]["memory"].as_str() {
        flags.extend(["--memory".to_owned(), memory.trim_end_matches('i').to_ascii_lowercase()]);
    }
    // Volumes: a Secret's keys become read-only files; emptyDir (and, for
    // this test, persistent claims) become tmpfs mounts owned by the pod's
    // fsGroup, as the kubelet chowns them.
    let owner = user("runAsUser").unwrap_or(0);
    let group = pod["securityContext"]["fsGroup"].as_u64().or_else(|| user("runAsGroup")).unwrap_or(0);
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let path = mount["mountPath"].as_str().expect("mountPath");
        let name = mount["name"].as_str().expect("volume name");
        let volume = pod["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == name);
        match volume.and_then(|v| v["secret"]["secretName"].as_str()) {
            Some(secret) => {
                let data = cluster.secrets.get(secret).unwrap_or_else(|| panic!("no Secret {secret}"));
                flags.extend(["-v".to_owned(), format!("{}:{path}:ro", secret_volume(volumes, name, data))]);
            }
            None => flags.extend(["--tmpfs".to_owned(), format!("{path}:uid={owner},gid={group},mode=0770")]),
        }
    }
    for (name, value) in env {
        flags.extend(["-e".to_owned(), format!("{name}={value}")]);
    }
    flags
}

/// A Secret's keys as files (world-readable, as `defaultMode: 0444`) in a
/// directory of their own; its path.
fn secret_volume(volumes: &Path, name: &str, data: &BTreeMap<String, String>) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = volumes.join(name);
    std::fs::create_dir_all(&dir).expect("volume dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (key, value) in data {
        let file = dir.join(key);
        std::fs::write(&file, value).expect("secret file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    }
    dir.display().to_string()
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod[list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name}"))
}

/// Renders the chart with `values` and runs its pods; `key` is the API
/// key the release's keys Secret accepts, if it has one.
async fn run_release(
    values: Option<&str>,
    sets: &[&str],
    extra_secrets: &[(&str, &str, &str)],
    key: Option<&str>,
) {
    let mut args = vec!["template", RELEASE, CHART];
    let values_path = values.map(|v| format!("{CHART}/{v}"));
    if let Some(path) = &values_path {
        args.extend(["--values", path]);
    }
    for set in sets {
        args.extend(["--set-string", set]);
    }
    let objects = documents(&ok(run("helm", &args)));
    let cluster = Cluster::new(&objects, extra_secrets);
    let what = values.unwrap_or("values.yaml");
    let id = format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    );
    let volumes = tempfile::tempdir().expect("volumes");
    let mut cleanup = Cleanup::default();
    let network = format!("sb-pod-{id}");
    docker(&["network", "create", &network]);
    cleanup.0.push(("network", network.clone()));
    let postgres_image = std::env::var("TEST_POSTGRES_IMAGE").unwrap_or_else(|_| POSTGRES_IMAGE.into());

    // PostgreSQL: the chart's own pod, or an external server under the values' host name.
    let deployment = find(&objects, "Deployment").expect("a Deployment");
    let api_pod = &deployment["spec"]["template"]["spec"];
    let api_env = cluster.environment(container(api_pod, "containers", "session-backend"));
    let database = api_env["POSTGRES_DB"].clone();
    let user = api_env["POSTGRES_USER"].clone();
    let pg = format!("sb-pod-pg-{id}");
    match find(&objects, "StatefulSet") {
        Some(statefulset) => {
            let pod = &statefulset["spec"]["template"]["spec"];
            assert_eq!(pod["enableServiceLinks"], false, "{what}: the PostgreSQL pod gets service links");
            let spec = container(pod, "containers", "postgresql");
            let env = cluster.environment(spec);
            let mut run_args: Vec<String> =
                ["run", "-d", "--name", &pg, "--network", &network].map(String::from).into();
            let service = statefulset["metadata"]["name"].as_str().expect("name");
            run_args.extend(["--network-alias".to_owned(), service.to_owned()]);
            run_args.extend(pod_flags(pod, spec, &env, &cluster, volumes.path()));
            run_args.push(postgres_image.clone());
            run_args.extend(
                spec["args"].as_array().into_iter().flatten().map(|a| a.as_str().expect("arg").to_owned()),
            );
            docker(&run_args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        None => {
            let host = &api_env["POSTGRES_HOST"];
            let password = api_env["POSTGRES_PASSWORD"].clone();
            docker(&[
                "run",
                "-d",
                "--name",
                &pg,
                "--network",
                &network,
                "--network-alias",
                host,
                "-e",
                &format!("POSTGRES_USER={user}"),
                "-e",
                &format!("POSTGRES_PASSWORD={password}"),
                "-e",
                &format!("POSTGRES_DB={database}"),
                &postgres_image,
            ]);
        }
    }
    cleanup.0.push(("container", pg.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !run("docker", &["exec", &pg, "pg_isready", "-U", &user, "-d", &database, "-h", "127.0.0.1"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "{what}: PostgreSQL never became ready: {}",
            text(&run("docker", &["logs", &pg]).stderr)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let Some(statefulset) = find(&objects, "StatefulSet") {
        let expected = statefulset["spec"]["template"]["spec"]["containers"][0]["args"][1]
            .as_str()
            .and_then(|a| a.strip_prefix("max_connections="))
            .expect("max_connections")
            .to_owned();
        let shown =
            docker(&["exec", &pg, "psql", "-U", &user, "-d", &database, "-tAc", "SHOW max_connections"]);
        assert_eq!(shown, expected, "{what}: max_connections");
    }

    // The API pod: the init container migrates, then the server serves.
    assert_eq!(api_pod["enableServiceLinks"], false, "{what}: the API pod gets service links");
    let image =
        container(api_pod, "containers", "session-backend")["image"].as_str().expect("image").to_owned();
    for init in api_pod["initContainers"].as_array().into_iter().flatten() {
        let env = cluster.environment(init);
        let mut run_args: Vec<String> = ["run", "--rm", "--network", &network].map(String::from).into();
        run_args.extend(pod_flags(api_pod, init, &env, &cluster, volumes.path()));
        run_args.push(image.clone());
        run_args.extend(
            init["args"].as_array().into_iter().flatten().map(|a| a.as_str().expect("arg").to_owned()),
        );
        let out = run("docker", &run_args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "{what}: init container {} failed:\n{}",
            init["name"],
            text(&out.stderr)
        );
    }
    let main = container(api_pod, "containers", "session-backend");
    let api = format!("sb-pod-api-{id}");
    let mut run_args: Vec<String> =
        ["run", "-d", "--name", &api, "--network", &network, "--hostname", "session-backend-5d9c7b8f4-x2x7k"]
            .map(String::from)
            .into();
    let port = main["ports"][0]["containerPort"].as_u64().expect("containerPort");
    run_args.extend(["-p".to_owned(), format!("127.0.0.1::{port}")]);
    run_args.extend(pod_flags(api_pod, main, &api_env, &cluster, volumes.path()));
    run_args.push(image);
    run_args
        .extend(main["args"].as_array().into_iter().flatten().map(|a| a.as_str().expect("arg").to_owned()));
    docker(&run_args.iter().map(String::as_str).collect::<Vec<_>>());
    cleanup.0.push(("container", api.clone()));
    let mapping = docker(&["port", &api, &format!("{port}/tcp")]);
    let base =
        format!("http://{}", mapping.lines().find(|l| l.starts_with("127.0.0.1:")).expect("published port"));
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = main[probe]["httpGet"]["path"].as_str().expect("probe path");
        answers_200(&format!("{base}{path}"), &api).await;
    }
    let client = reqwest::Client::new();
    let create = || {
        client.post(format!("{base}/api/v1/sessions")).json(&serde_json::json!({"session_id": "pod-test"}))
    };
    if let Some(key) = key {
        let refused = create().send().await.expect("post");
        assert_eq!(refused.status(), 401, "{what}: the API answers without a key");
        let created = create().bearer_auth(key).send().await.expect("post");
        assert_eq!(created.status(), 201, "{what}: the key from the Secret volume");
    } else {
        assert_eq!(create().send().await.expect("post").status(), 201, "{what}");
    }
    let logs = text(&run("docker", &["logs", &api]).stderr);
    assert!(
        logs.contains("SESSION_BACKEND_PORT") && logs.contains("name no setting"),
        "{what}: no warning:\n{logs}"
    );
    assert!(!logs.contains("\"level\":\"ERROR\""), "{what}: errors in the log:\n{logs}");
    // Termination: the preStop pause, then SIGTERM with what is left of the grace period.
    let grace = api_pod["terminationGracePeriodSeconds"].as_u64().expect("grace");
    let pause = main["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(pause.min(2))).await;
    let started = Instant::now();
    docker(&["stop", "--time", &(grace - pause).to_string(), &api]);
    assert_eq!(docker(&["inspect", "--format", "{{.State.ExitCode}}", &api]), "0", "{what}: exit code");
    assert!(
        started.elapsed() < Duration::from_secs(grace - pause),
        "{what}: stop took {:?}",
        started.elapsed()
    );
    eprintln!("{what}: init and API containers up, probes 200, stopped in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_values_file_brings_up_its_pods_as_a_kubelet_would() {
    if !have("docker", &["info"]) || !have("helm", &["version"]) {
        return;
    }
    let (Some(base), Some(builder), Some(_postgres)) = (
        image("TEST_BASE_IMAGE", BASE_IMAGE),
        image("TEST_BUILDER_IMAGE", BUILDER_IMAGE),
        image("TEST_POSTGRES_IMAGE", POSTGRES_IMAGE),
    ) else {
        return;
    };
    // The chart's image as it names it: <repository>:<appVersion>.
    let built = xtask()
        .args(["image", "--base-image", &base])
        .args(["--builder-image", &builder])
        .current_dir(root())
        .output()
        .expect("xtask image");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let mut images = Cleanup::default();
    built_images(&text(&built.stderr), &mut images);
    let ordinary = ["postgresql.auth.password=123456", "postgresql.auth.database=2024"];
    run_release(None, &ordinary, &[], None).await;
    run_release(Some("values-development.yaml"), &ordinary, &[], None).await;
    // Production: API keys from a Secret the operator made.
    let key = session_backend::domain::keys::mint().expect("key");
    let keys_file = format!("# team a\nteam-a {}\n", key.hash);
    let production = [&ordinary[..], &["auth.existingSecret=sb-api-keys"]].concat();
    let secret = [("sb-api-keys", "keys", keys_file.as_str())];
    run_release(Some("values-production.yaml"), &production, &secret, Some(&key.key)).await;
    // External: the operator's Secret holds the password.
    run_release(
        Some("values-external-postgresql.yaml"),
        &["externalPostgresql.database=2024", "externalPostgresql.username=true"],
        &[("session-backend-db", "password", "\"quoted\"")],
        None,
    )
    .await;
}
