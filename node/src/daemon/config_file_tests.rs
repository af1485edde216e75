//! Tests of `meshd`'s config file: each level of flag > env > file > default on a path, a
//! duration, a list and a boolean; unknown keys, wrong types, hostile files; the example
//! config `contrib/meshd.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;

use super::*;

/// meshd's command where `data_dir`, `health_timeout`, `listen` and `mdns` read the
/// environment variables `MESHCFGTEST_<TAG>_<ID>` (only `data_dir` has one in meshd; the
/// others show that precedence does not depend on the kind of value). Each test has its own
/// tag, so tests running in parallel do not see each other's variables; the other arguments
/// read none.
fn command(tag: &str) -> clap::Command {
    // The real variables (MESH_KEY, MESH_CONFIG, …) of whoever runs the tests do not count.
    let mut cmd = Args::command().mut_args(|a| a.env(None));
    for id in ["data_dir", "health_timeout", "listen", "mdns"] {
        let name: &'static str = Box::leak(format!("MESHCFGTEST_{tag}_{id}").into_boxed_str());
        cmd = cmd.mut_arg(id, |a| a.env(name));
    }
    cmd
}

fn set_env(tag: &str, id: &str, value: &str) {
    std::env::set_var(format!("MESHCFGTEST_{tag}_{id}"), value);
}

fn file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("meshd.toml");
    std::fs::write(&path, text).expect("write the config file");
    path
}

const FILE: &str = r#"
data-dir = "/from/file"
health-timeout = "7s"
listen = ["/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"]
mdns = true
max-connections = 12
engines = ["podman", "docker"]
"#;

fn run(tag: &str, args: &[&str]) -> anyhow::Result<Args> {
    parse_with(
        command(tag),
        std::iter::once("meshd").chain(args.iter().copied()),
    )
}

fn parse_err(tag: &str, args: &[&str]) -> String {
    format!("{:#}", run(tag, args).expect_err("the file is refused"))
}

#[test]
fn defaults_without_a_file() {
    let a = run("defaults", &[]).expect("parses");
    assert_eq!(a.data_dir, None);
    assert_eq!(a.health_timeout, Duration::from_secs(60));
    assert_eq!(
        a.listen,
        ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"]
    );
    assert!(!a.mdns);
    assert_eq!(a.engines, None);
}

#[test]
fn the_file_overrides_the_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(dir.path(), FILE);
    let a = run("file", &["--config", path.to_str().expect("utf-8")]).expect("parses");
    assert_eq!(a.data_dir, Some(PathBuf::from("/from/file")));
    assert_eq!(a.health_timeout, Duration::from_secs(7));
    assert_eq!(
        a.listen,
        ["/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"]
    );
    assert!(a.mdns);
    assert_eq!(a.max_connections, 12);
    assert_eq!(a.engines, Some(vec!["podman".into(), "docker".into()]));
    // Not in the file: still the default.
    assert_eq!(a.stop_grace, Duration::from_secs(10));
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(dir.path(), FILE);
    let tag = "env";
    set_env(tag, "data_dir", "/from/env");
    set_env(tag, "health_timeout", "9s");
    set_env(tag, "listen", "/ip4/10.0.0.1/tcp/1");
    set_env(tag, "mdns", "false");
    let a = run(tag, &["--config", path.to_str().expect("utf-8")]).expect("parses");
    assert_eq!(a.data_dir, Some(PathBuf::from("/from/env")));
    assert_eq!(a.health_timeout, Duration::from_secs(9));
    assert_eq!(a.listen, ["/ip4/10.0.0.1/tcp/1"]);
    assert!(
        !a.mdns,
        "mdns=false in the environment beats mdns = true in the file"
    );
    // Keys without a variable set still come from the file.
    assert_eq!(a.max_connections, 12);
}

#[test]
fn flags_override_the_environment_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(dir.path(), &FILE.replace("mdns = true", "mdns = false"));
    let tag = "flags";
    set_env(tag, "data_dir", "/from/env");
    set_env(tag, "health_timeout", "9s");
    set_env(tag, "listen", "/ip4/10.0.0.1/tcp/1");
    set_env(tag, "mdns", "false");
    let a = run(
        tag,
        &[
            "--config",
            path.to_str().expect("utf-8"),
            "--data-dir",
            "/from/flag",
            "--health-timeout",
            "11s",
            "--listen",
            "/ip4/10.0.0.2/tcp/2",
            "--listen",
            "/ip4/10.0.0.3/tcp/3",
            "--mdns",
            "--max-connections",
            "99",
        ],
    )
    .expect("parses");
    assert_eq!(a.data_dir, Some(PathBuf::from("/from/flag")));
    assert_eq!(a.health_timeout, Duration::from_secs(11));
    assert_eq!(a.listen, ["/ip4/10.0.0.2/tcp/2", "/ip4/10.0.0.3/tcp/3"]);
    assert!(a.mdns);
    assert_eq!(a.max_connections, 99);
    assert_eq!(a.engines, Some(vec!["podman".into(), "docker".into()]));
}

#[test]
fn an_unknown_key_is_named_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(dir.path(), "mdns = true\n\nheartbeat = \"1s\"\n");
    let err = parse_err("unknown", &["--config", path.to_str().expect("utf-8")]);
    let at = format!("{}:3: unknown key `heartbeat`", path.display());
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("heartbeat-interval"), "lists the keys: {err}");
    // A section is a key too; `config` cannot name another file.
    for (text, key) in [
        ("[mesh]\nmdns = true\n", "mesh"),
        ("config = \"x\"\n", "config"),
    ] {
        let path = file(dir.path(), text);
        let err = parse_err("unknown2", &["--config", path.to_str().expect("utf-8")]);
        assert!(err.contains(&format!("unknown key `{key}`")), "{err}");
    }
}

#[test]
fn a_wrong_type_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "mdns = \"yes\"\n",
            ":1: `mdns` must be true or false, not string",
        ),
        (
            "listen = 4001\n",
            ":1: `listen` must be a list of strings, not integer",
        ),
        (
            "listen = [4001]\n",
            "must be a list of strings, not a list with an integer",
        ),
        (
            "data-dir = [\"/a\"]\n",
            ":1: `data-dir` must be a string or a number, not array",
        ),
        (
            "\nmax-connections = \"many\"\n",
            ":2: `max-connections` \"many\": invalid digit",
        ),
        ("health-timeout = 5\n", ":1: `health-timeout` \"5\": "),
        ("engines = \"podman,nope\"\nstop-grace = \"1s\"\n", ""),
    ];
    for (text, expected) in cases {
        let path = file(dir.path(), text);
        let result = run("types", &["--config", path.to_str().expect("utf-8")]);
        if expected.is_empty() {
            // Engine names are checked where flags are: when the node is configured.
            assert!(result.is_ok(), "{text}: {result:?}");
            continue;
        }
        let err = format!("{:#}", result.expect_err(text));
        assert!(err.contains(&path.display().to_string()), "{text}: {err}");
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn hostile_files_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = |p: &Path| vec!["--config".to_string(), p.display().to_string()];
    fn args(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let missing = dir.path().join("nope.toml");
    let err = parse_err("hostile", &args(&cfg(&missing)));
    assert!(err.contains("cannot read the config file"), "{err}");
    let path = file(dir.path(), "mdns = true\nthis is [[ not toml\n");
    let err = parse_err("hostile", &args(&cfg(&path)));
    assert!(
        err.contains("is not valid TOML") && err.contains('2'),
        "{err}"
    );
    std::fs::write(&path, [0xff, 0xfe, 0, 1, 2, 0x80]).expect("write");
    let err = parse_err("hostile", &args(&cfg(&path)));
    assert!(err.contains("not UTF-8"), "{err}");
    std::fs::write(&path, vec![b'#'; (MAX_BYTES + 1) as usize]).expect("write");
    let err = parse_err("hostile", &args(&cfg(&path)));
    assert!(err.contains("more than a config file has"), "{err}");
    let err = parse_err("hostile", &args(&cfg(dir.path())));
    assert!(err.contains("config file"), "a directory: {err}");
}

#[test]
fn a_conflict_with_the_file_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(dir.path(), "trust-any = true\n");
    let p = path.to_str().expect("utf-8");
    let err = parse_err(
        "conflict",
        &["--config", p, "--trust-file", "/etc/mesh/trust.yaml"],
    );
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(err.contains(p), "{err}");
}

/// `contrib/meshd.toml` has every key (most commented out, as `#key = value`): it parses as it
/// is, and with every such line enabled too. So it cannot rot.
#[test]
fn the_example_config_parses_and_names_every_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/meshd.toml");
    let text = std::fs::read_to_string(&example).expect("contrib/meshd.toml");
    let p = example.to_str().expect("utf-8");
    let a = run("example", &["--config", p]).expect("the example parses");
    assert_eq!(a.data_dir, Some(PathBuf::from("/var/lib/mesh")));
    assert_eq!(a.health_timeout, Duration::from_secs(60));
    let enabled: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(dir.path(), &enabled);
    let a = run("example2", &["--config", path.to_str().expect("utf-8")])
        .unwrap_or_else(|e| panic!("the example with every key enabled: {e:#}\n{enabled}"));
    assert_eq!(a.api_group.as_deref(), Some("mesh"));
    let table = toml::de::DeTable::parse(&enabled).expect("TOML");
    let present: Vec<&str> = table
        .get_ref()
        .keys()
        .map(|k| k.get_ref().as_ref())
        .collect();
    for key in keys(&Args::command()) {
        assert!(present.contains(&key), "contrib/meshd.toml lacks `{key}`");
    }
}
