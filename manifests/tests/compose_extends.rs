//! Compose `extends` within one file and the `!reset` / `!override` tags, as the Compose
//! specification describes them (05-services.md#extends, 13-merge.md).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mesh_manifests::{parse, referenced_env_vars, Error, ParseOptions};
use mesh_protocol::spec::{Container, DependencyCondition, RestartPolicy, WorkloadSpec};

fn opts() -> ParseOptions {
    ParseOptions {
        default_name: Some("stack".into()),
        env: BTreeMap::new(),
        ..ParseOptions::default()
    }
}

fn one(yaml: &str) -> WorkloadSpec {
    let mut specs = parse(yaml.as_bytes(), &opts()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

fn err(yaml: &str) -> Error {
    parse(yaml.as_bytes(), &opts()).expect_err("must fail")
}

fn container<'a>(spec: &'a WorkloadSpec, name: &str) -> &'a Container {
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env(c: &Container) -> Vec<(String, String)> {
    c.env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn port_pairs(c: &Container) -> Vec<(u16, Option<u16>)> {
    c.ports
        .iter()
        .map(|p| (p.container_port, p.host_port))
        .collect()
}

/// The specification's first example, then a chain: `cli` gets `restart` from `base`
/// through `common`.
#[test]
fn extends_merges_environment_and_follows_chains() {
    let s = one(
        "services:\n  common:\n    image: busybox\n    environment:\n      TZ: utc\n      PORT: 80\n\
         \x20 cli:\n    extends:\n      service: common\n    environment:\n      PORT: 8080\n\
         \x20 base:\n    image: alpine\n    restart: always\n    labels: [tier=back]\n\
         \x20 middle:\n    image: busybox\n    extends: {service: base}\n    labels: {team: a}\n\
         \x20 top:\n    extends: middle\n    command: sleep 1\n",
    );
    let cli = container(&s, "cli");
    assert_eq!(cli.image, "busybox");
    assert_eq!(env(cli), pairs(&[("TZ", "utc"), ("PORT", "8080")]));
    // The base is still a service of its own, unchanged.
    assert_eq!(
        env(container(&s, "common")),
        pairs(&[("TZ", "utc"), ("PORT", "80")])
    );
    let top = container(&s, "top");
    assert_eq!(top.image, "busybox");
    assert_eq!(top.restart, Some(RestartPolicy::Always));
    assert_eq!(top.args, ["sleep", "1"]);
    let labels: Vec<(&str, &str)> = top
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels, [("team", "a"), ("tier", "back")]);
    let names: Vec<&str> = s.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["common", "cli", "base", "middle", "top"],
        "file order"
    );
}

#[test]
fn extends_appends_ports_and_merges_depends_on() {
    let s = one(
        "services:\n  db: {image: postgres}\n  cache: {image: redis}\n\
         \x20 base:\n    image: app\n    ports: ['8080:80', '9000:9000']\n    depends_on: [db]\n    \
         command: [serve, --all]\n    volumes: ['data:/srv:rw']\n\
         \x20 web:\n    extends: base\n    ports: ['8080:80', '8443:443']\n    \
         depends_on: {db: {condition: service_healthy}, cache: {condition: service_started}}\n    \
         command: [serve, --web]\n    volumes: ['/tmp/x:/srv:ro']\n\
         volumes: {data: {}}\n",
    );
    let web = container(&s, "web");
    assert_eq!(
        port_pairs(web),
        [(80, Some(8080)), (9000, Some(9000)), (443, Some(8443))]
    );
    let deps: Vec<(&str, DependencyCondition)> = web
        .depends_on
        .iter()
        .map(|d| (d.service.as_str(), d.condition))
        .collect();
    assert_eq!(
        deps,
        [
            ("db", DependencyCondition::ServiceHealthy),
            ("cache", DependencyCondition::ServiceStarted)
        ]
    );
    assert_eq!(web.args, ["serve", "--web"], "command is replaced");
    assert_eq!(
        web.mounts.len(),
        1,
        "one mount per target: {:?}",
        web.mounts
    );
    assert!(web.mounts[0].read_only, "the extending volume wins");
}

#[test]
fn reset_and_override_apply_to_what_is_inherited() {
    let s = one(
        "services:\n  base:\n    image: app\n    ports: ['8080:80']\n    environment: {FOO: BAR, KEEP: '1'}\n    \
         restart: always\n\
         \x20 web:\n    extends: base\n    ports: !override ['8443:443']\n    environment:\n      FOO: !reset null\n    \
         restart: !reset\n\
         \x20 api:\n    extends: base\n    ports: !reset []\n",
    );
    let web = container(&s, "web");
    assert_eq!(port_pairs(web), [(443, Some(8443))]);
    assert_eq!(env(web), pairs(&[("KEEP", "1")]));
    assert_eq!(web.restart, None);
    let api = container(&s, "api");
    assert!(api.ports.is_empty(), "{:?}", api.ports);
    assert_eq!(port_pairs(container(&s, "base")), [(80, Some(8080))]);
}

/// YAML merge keys already let local keys win; `!reset` removes a merged key.
#[test]
fn tags_work_with_merge_keys_and_within_one_file() {
    let s = one(
        "x-base: &base\n  image: app\n  ports: ['80:80']\n  restart: always\n\
         services:\n  one:\n    <<: *base\n    ports: !reset []\n    restart: !override 'no'\n\
         \x20 two:\n    image: !override plain\n    command: !reset [ignored]\n    \
         environment: [A=1, !reset B=2]\n\
         \x20 gone: !reset {image: z}\n\
         x-beemesh: !override {namespace: team-a}\n",
    );
    let names: Vec<&str> = s.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["one", "two"], "a !reset service is absent");
    assert_eq!(s.namespace, "team-a");
    let one_ = container(&s, "one");
    assert_eq!(one_.image, "app");
    assert!(one_.ports.is_empty());
    assert_eq!(one_.restart, Some(RestartPolicy::Never));
    let two = container(&s, "two");
    assert_eq!(two.image, "plain");
    assert!(two.args.is_empty());
    assert_eq!(env(two), pairs(&[("A", "1")]));
}

#[test]
fn reset_values_are_not_interpolated() {
    let s = one("services:\n  a:\n    image: x\n    command: !reset ${MISSING:?boom}\n    working_dir: !override ${DIR:-/srv}\n");
    let a = container(&s, "a");
    assert!(a.args.is_empty());
    assert_eq!(a.working_dir.as_deref(), Some("/srv"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let names =
        referenced_env_vars(b"services:\n  a:\n    image: x\n    environment: !override [TOKEN]\n");
    assert!(names.contains("TOKEN"), "{names:?}");
}

#[test]
fn extends_errors_are_located() {
    let cases = [
        (
            "services:\n  web: {image: x, extends: {service: base, file: common.yml}}\n",
            "services.web.extends.file: other files are not supported; copy service base from \"common.yml\" into this file (the mesh reads one file)",
        ),
        (
            "services:\n  web: {image: x, extends: {service: base}}\n",
            "services.web.extends.service: service \"base\" is not defined",
        ),
        (
            "services:\n  web: {image: x, extends: base}\n  base: !reset {image: y}\n",
            "services.web.extends: service \"base\" is not defined",
        ),
        (
            "services:\n  web: {image: x, extends: {file: common.yml}}\n",
            "services.web.extends.file: other files are not supported; copy the service from \"common.yml\"",
        ),
        (
            "services:\n  web: {image: x, extends: {}}\n",
            "services.web.extends.service: missing",
        ),
        (
            "services:\n  web: {image: x, extends: {service: b, path: x}}\n  b: {image: y}\n",
            "services.web.extends.path: unknown field",
        ),
        (
            "services:\n  web: {image: x, extends: [b]}\n  b: {image: y}\n",
            "services.web.extends: expected a service name or a mapping with service, found a list",
        ),
        (
            "services:\n  web: {image: x, extends: b}\n  b:\n",
            "services.web.extends: cannot extend service b: expected a mapping, found nothing (null)",
        ),
        (
            "services:\n  web: {extends: b, healthcheck: none}\n  b: {image: y, healthcheck: {test: [CMD, t]}}\n",
            "services.web.healthcheck: cannot merge a string into a mapping inherited from service b",
        ),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(
            e.to_string().starts_with(want),
            "got {:?}, want {want:?}",
            e.to_string()
        );
    }
}

#[test]
fn extends_cycles_are_refused_in_order() {
    let e = err(
        "services:\n  c: {image: x, extends: a}\n  b: {image: x, extends: {service: c}}\n  a: {image: x, extends: b}\n",
    );
    assert_eq!(
        e.to_string(),
        "services.c.extends: extends forms a cycle: a -> b -> c -> a"
    );
    let e = err("services:\n  a: {image: x, extends: {service: a}}\n");
    assert_eq!(
        e.to_string(),
        "services.a.extends.service: extends forms a cycle: a -> a"
    );
    // A service extending into a cycle names the cycle, not itself.
    let e = err("services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: c}\n  c: {image: x, extends: b}\n");
    assert_eq!(
        e.to_string(),
        "services.c.extends: extends forms a cycle: b -> c -> b"
    );
}

#[test]
fn unknown_tags_and_tags_outside_compose_are_refused() {
    let e = err("services:\n  web:\n    ports: !custom []\n");
    assert_eq!(
        e.to_string(),
        "line 3, column 12: YAML tag !custom is not supported (Compose files accept !reset and !override)"
    );
    let e = err("services:\n  web:\n    !reset image: x\n");
    assert!(
        e.to_string()
            .contains("YAML tag !reset is not supported on a key"),
        "{e}"
    );
    let e = err(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      image: !override x\n",
    );
    assert_eq!(
        e.to_string(),
        "spec.containers[0].image: YAML tag !override is only supported in Compose files"
    );
}

/// A hostile chain of services each extending the next neither overflows the stack nor
/// takes long; one where every level copies more is cut off.
#[test]
fn long_extends_chains_are_bounded() {
    let mut yaml = String::from("services:\n");
    let n = 20_000;
    for i in 0..n {
        yaml.push_str(&format!("  s{i}: {{extends: s{}}}\n", i + 1));
    }
    yaml.push_str(&format!("  s{n}: {{image: x}}\n"));
    let started = Instant::now();
    let s = one(&yaml);
    assert_eq!(s.containers.len(), n + 1);
    assert!(s.containers.iter().all(|c| c.image == "x"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let mut yaml = String::from("services:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  s{i}: {{extends: s{}, environment: [V{i}=1]}}\n",
            i + 1
        ));
    }
    yaml.push_str(&format!("  s{n}: {{image: x}}\n"));
    let started = Instant::now();
    let e = err(&yaml);
    assert!(
        e.to_string()
            .contains("extends copies more than 1048576 values"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
