#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;

const KEY: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

#[test]
fn a_full_trust_file_parses() {
    let p = parse(&format!(
        "keys:\n- key: {KEY}\n  name: ops\n  roles: [deploy, admin]\n  namespaces: ['*']\n  grants:\n    hostPaths: [/srv/data]\n    hostNetwork: true\n    capabilities: [cap_net_admin]\n    processEngine: true\nnode:\n  engines: {{allow: [podman, WASM], deny: [docker]}}\n  maxCpu: 2\n  maxMemory: 1Gi\nreplay:\n  maxSkew: 90s\n"
    ))
    .unwrap();
    let g = &p.keys[&KEY.parse().unwrap()];
    assert_eq!(g.name, "ops");
    assert!(g.admin() && g.may_use("anything"));
    assert_eq!(g.host.host_paths, ["/srv/data"]);
    assert!(g.host.network && !g.host.pid && g.host.process_engine);
    assert!(g.host.capabilities.contains("NET_ADMIN"));
    assert_eq!(p.max_cpu_millis, Some(2000));
    assert_eq!(p.max_memory_bytes, Some(1 << 30));
    assert_eq!(p.max_skew, Duration::from_secs(90));
    assert!(p.engines.allowed.as_ref().unwrap().contains("wasm"));
    assert!(p.engines.denied.contains("docker"));
}

#[test]
fn defaults_are_narrow() {
    let p = parse(&format!("keys:\n- key: {KEY}\n  roles: [deploy]\n")).unwrap();
    let g = &p.keys[&KEY.parse().unwrap()];
    assert!(!g.admin());
    assert!(g.may_use("default") && !g.may_use("prod"));
    assert_eq!(g.host, HostGrant::default());
    assert_eq!(p.max_skew, DEFAULT_MAX_SKEW);
    assert!(!p.any);
}

#[test]
fn mistakes_are_refused_with_where_they_are() {
    for (text, says) in [
        (
            "keys:\n- key: nope\n  roles: [deploy]\n".to_string(),
            "keys[0].key",
        ),
        (
            format!("keys:\n- key: {KEY}\n  roles: []\n"),
            "keys[0].roles is empty",
        ),
        (
            format!("keys:\n- key: {KEY}\n  roles: [root]\n"),
            "unknown variant",
        ),
        (
            format!("keys:\n- key: {KEY}\n  roles: [deploy]\n  grant: {{}}\n"),
            "unknown field",
        ),
        (
            format!("keys:\n- key: {KEY}\n  roles: [deploy]\n  grants: {{hostPaths: [srv]}}\n"),
            "not an absolute path",
        ),
        (
            format!("keys:\n- key: {KEY}\n  roles: [deploy]\n- key: {KEY}\n  roles: [admin]\n"),
            "listed twice",
        ),
        ("node: {maxMemory: lots}\n".to_string(), "node.maxMemory"),
        ("replay: {maxSkew: soon}\n".to_string(), "replay.maxSkew"),
        ("keys: [\n".to_string(), ""),
    ] {
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains(says), "{text:?}: {e}");
    }
}
