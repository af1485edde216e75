//! Merge rules of `extends`, value by value (the file-level behaviour is tested in
//! tests/compose_extends.rs).

use super::*;

fn yaml(text: &str) -> Value {
    let mut docs = crate::yaml::load(text.as_bytes(), &crate::Limits::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    docs.remove(0).value
}

fn mapping(text: &str) -> Mapping {
    match yaml(text) {
        Value::Mapping(m) => m,
        other => panic!("not a mapping: {other:?}"),
    }
}

fn merged(base: &str, over: &str) -> Result<Value> {
    let at = Path::root().key("services").key("web");
    merge_service(mapping(base), &mapping(over), "base", &at).map(Value::Mapping)
}

fn merges_to(base: &str, over: &str, want: &str) {
    let got = merged(base, over).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, yaml(want), "{base} + {over}");
}

#[test]
fn mappings_merge_scalars_replace_sequences_append() {
    merges_to(
        "image: a\nuser: root\ndeploy: {replicas: 2, resources: {limits: {cpus: '1'}}}\nextra: [x]\n",
        "image: b\ndeploy: {resources: {limits: {memory: 1g}}}\nextra: [y]\n",
        "image: b\nuser: root\ndeploy: {replicas: 2, resources: {limits: {cpus: '1', memory: 1g}}}\n\
         extra: [x, y]\n",
    );
}

#[test]
fn commands_and_health_tests_are_replaced() {
    merges_to(
        "command: [echo, foo]\nentrypoint: sh\nhealthcheck: {test: [CMD, a], interval: 5s}\n\
         ulimits: {nofile: {soft: 1, hard: 2}}\n",
        "command: [echo, bar]\nhealthcheck: {test: [CMD, b]}\nulimits: {nofile: 3}\n",
        "command: [echo, bar]\nentrypoint: sh\nhealthcheck: {test: [CMD, b], interval: 5s}\n\
         ulimits: {nofile: 3}\n",
    );
}

/// The specification's example: `PORT` is overridden, `TZ` kept, whatever the form.
#[test]
fn environment_and_labels_merge_by_key_in_either_form() {
    let want = "environment: {TZ: utc, PORT: '8080'}\n";
    merges_to(
        "environment: {TZ: utc, PORT: 80}\n",
        "environment: {PORT: '8080'}\n",
        want,
    );
    merges_to(
        "environment: [TZ=utc, PORT=80]\n",
        "environment: [PORT=8080]\n",
        want,
    );
    merges_to(
        "labels: [a=1, b]\n",
        "labels: {b: '2', c: '3'}\n",
        "labels: {a: '1', b: '2', c: '3'}\n",
    );
    let err = merged("environment: [A=1]\n", "environment: [[x]]\n").expect_err("nested list");
    assert_eq!(
        err.to_string(),
        "services.web.environment[0]: expected a string, number or boolean, found a list"
    );
}

#[test]
fn unique_resources_replace_entries_with_the_same_key() {
    merges_to(
        "ports: ['8080:80', {target: 53, published: 53, protocol: udp}]\n\
         volumes: ['common:/var/lib/backup/data:rw', /cache]\nsecrets: [a, {source: b, target: /b}]\n",
        "ports: ['8080:80', '9090:90', {target: 53, published: 53, protocol: udp, mode: host}]\n\
         volumes: ['cli:/var/lib/backup/data:ro']\nsecrets: [{source: c, target: /run/secrets/a}]\n",
        "ports: ['8080:80', {target: 53, published: 53, protocol: udp, mode: host}, '9090:90']\n\
         volumes: ['cli:/var/lib/backup/data:ro', /cache]\n\
         secrets: [{source: c, target: /run/secrets/a}, {source: b, target: /b}]\n",
    );
}

#[test]
fn plain_sequences_drop_duplicates_and_accept_one_string() {
    merges_to(
        "expose: ['3000']\ncap_add: [NET_ADMIN]\ndns: 1.1.1.1\ntmpfs: [/run]\n",
        "expose: ['3000', 4000]\ncap_add: [NET_ADMIN, SYS_TIME]\ndns: [8.8.8.8, 1.1.1.1]\ntmpfs: /run\n",
        "expose: ['3000', 4000]\ncap_add: [NET_ADMIN, SYS_TIME]\ndns: [1.1.1.1, 8.8.8.8]\ntmpfs: [/run]\n",
    );
}

#[test]
fn depends_on_merges_as_a_mapping() {
    merges_to(
        "depends_on: [db, cache]\n",
        "depends_on: {db: {condition: service_healthy}, queue: {condition: service_started}}\n",
        "depends_on:\n  db: {condition: service_healthy, required: true}\n  \
         cache: {condition: service_started, required: true}\n  queue: {condition: service_started}\n",
    );
}

#[test]
fn build_strings_are_contexts_and_logging_follows_the_driver() {
    merges_to(
        "build: ./app\nlogging: {driver: json-file, options: {max-size: 1m}}\n",
        "build: {dockerfile: Dockerfile.dev}\nlogging: {options: {max-file: '3'}}\n",
        "build: {context: ./app, dockerfile: Dockerfile.dev}\n\
         logging: {driver: json-file, options: {max-size: 1m, max-file: '3'}}\n",
    );
    merges_to(
        "logging: {driver: json-file, options: {max-size: 1m}}\n",
        "logging: {driver: syslog}\n",
        "logging: {driver: syslog}\n",
    );
}

#[test]
fn reset_removes_and_override_replaces() {
    merges_to(
        "image: a\nports: ['8080:80']\nenvironment: {FOO: BAR, KEEP: '1'}\nuser: root\n\
         labels: [x=1]\ndeploy: {resources: {limits: {cpus: '1'}}, replicas: 2}\n",
        "ports: !override ['8443:443']\nenvironment: {FOO: !reset null}\nuser: !reset\n\
         labels: !reset []\ndeploy: {resources: !override {reservations: {cpus: '0.5'}}}\n",
        "image: a\nports: ['8443:443']\nenvironment: {KEEP: '1'}\n\
         deploy: {resources: {reservations: {cpus: '0.5'}}, replicas: 2}\n",
    );
    // Tags inside what the extending service adds are resolved as within one file.
    merges_to(
        "image: a\n",
        "ports: ['80', !reset '81', !override '82']\nenvironment: [A=1, !reset B=2]\n",
        "image: a\nports: ['80', '82']\nenvironment: [A=1]\n",
    );
}

#[test]
fn null_keeps_what_is_inherited() {
    merges_to(
        "environment: {A: '1'}\nimage: a\n",
        "environment:\nimage:\n",
        "environment: {A: '1'}\nimage: a\n",
    );
}

#[test]
fn forms_that_cannot_merge_are_refused() {
    let err =
        merged("healthcheck: {test: [CMD, a]}\n", "healthcheck: none\n").expect_err("mismatch");
    assert_eq!(
        err.to_string(),
        "services.web.healthcheck: cannot merge a string into a mapping inherited from service \
         base: write it in the same form or replace it with !override"
    );
    let err = merged("ports: ['80']\n", "ports: '81'\n").expect_err("a string is not a list");
    assert!(
        err.to_string()
            .starts_with("services.web.ports: cannot merge a string into a list"),
        "{err}"
    );
    merges_to(
        "healthcheck: {test: [CMD, a]}\n",
        "healthcheck: !override none\n",
        "healthcheck: none\n",
    );
}
