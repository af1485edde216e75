//! Files a node reads: the trust file (`trust::file::parse`) and the mesh key
//! (`daemon::load_mesh_key`, from a file).

use mesh_node::daemon::load_mesh_key;
use mesh_node::trust::file::parse;

use super::harness::{mutate_bytes, run, Rng};
use super::users;

const TRUST_TOKENS: &[&str] = &[
    ": ",
    "- ",
    "\n",
    "  ",
    "    ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "#",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "~",
    "null",
    "true",
    "0x",
    "-1",
    "1e999",
    "18446744073709551615",
    "é",
    "\u{feff}",
    "\t",
    "\r\n",
    "roles: [admin]\n",
    "roles: []\n",
    "namespaces: []\n",
    "namespaces: ['*']\n",
    "hostPaths: [/a/../b]\n",
    "capabilities: [cap_cap_sys_admin, ' all ']\n",
    "devices: ['*']\n",
    "maxCpu: ",
    "500m",
    "1e3",
    "99999999999999999999",
    "maxMemory: ",
    "1Ei",
    "-1Gi",
    "maxSkew: ",
    "18446744073709551615s",
    "99999999999999999999y",
    "1ns",
    "5m 3s",
    "allow: [PODMAN]\n",
    "deny: [' wasm ']\n",
    "- key: ",
    "key: ",
    "grants: {}\n",
    "node: {}\n",
    "replay: {}\n",
];

fn trust_seeds() -> Vec<Vec<u8>> {
    let keys: Vec<String> = users()
        .iter()
        .map(|k| k.public().to_peer_id().to_string())
        .collect();
    let (a, b) = (&keys[0], &keys[1]);
    [
        mesh_node::testnet::trust_file(&users()[0].public().to_peer_id()),
        format!(
            "keys:\n  - key: {a}            # `meshctl key show` prints it\n    name: ops\n    roles: [admin]\n    namespaces: [\"*\"]\n    \
             grants:\n      hostPaths: [/srv/data]\n      hostNetwork: false\n      hostPID: false\n      hostIPC: false\n      \
             privileged: false\n      capabilities: [NET_BIND_SERVICE]\n      devices: [/dev/fuse]\n      processEngine: false\n\
             node:\n  engines: {{allow: [podman, wasm], deny: [docker]}}\n  maxCpu: \"2\"\n  maxMemory: 4Gi\nreplay:\n  maxSkew: 5m\n"
        ),
        format!(
            "keys:\n- key: {b}\n  name: ci\n  roles: [deploy]\n  namespaces: [default, ci]\n  grants: {{capabilities: [cap_net_admin]}}\n\
             - key: {a}\n  roles: [deploy, admin]\nnode:\n  maxCpu: 500m\n  maxMemory: 536870912\nreplay: {{maxSkew: 90s}}\n"
        ),
        "{}\n".to_string(),
        "node:\n  engines:\n    allow: []\n".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Swaps in a line of another seed: keeps most of the structure valid.
fn swap_line(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let other = rng.pick(seeds);
    let lines: Vec<&[u8]> = other.split(|b| *b == b'\n').collect();
    let line = rng.pick(&lines);
    let at = rng.below(input.len() + 1);
    let start = input[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    let end = input[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(input.len(), |p| at + p);
    input.splice(start..end, line.iter().copied());
}

#[test]
fn trust_files() {
    let seeds = trust_seeds();
    let tokens: Vec<&[u8]> = TRUST_TOKENS.iter().map(|t| t.as_bytes()).collect();
    run(
        "trust-files",
        &seeds,
        |rng| {
            let mut input = rng.pick(&seeds).clone();
            if rng.chance(3) {
                swap_line(rng, &mut input, &seeds);
            }
            mutate_bytes(rng, &mut input, &tokens, &seeds);
            input
        },
        |bytes| {
            // `load` reads the file as UTF-8 text.
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Ok(false);
            };
            let Ok(policy) = parse(text) else {
                return Ok(false);
            };
            for (key, grant) in &policy.keys {
                let host = &grant.host;
                if grant.roles.is_empty() || grant.namespaces.is_empty() {
                    return Err(format!("{key}: a grant without roles or namespaces"));
                }
                if let Some(p) = host
                    .host_paths
                    .iter()
                    .find(|p| !p.starts_with('/') || p.split('/').any(|c| c == ".."))
                {
                    return Err(format!("{key}: host path {p:?} accepted"));
                }
                if let Some(c) = host
                    .capabilities
                    .iter()
                    .find(|c| c.starts_with("CAP_") || **c != c.to_ascii_uppercase())
                {
                    return Err(format!("{key}: capability {c:?} not normalised"));
                }
            }
            let engines = &policy.engines;
            let names = engines
                .denied
                .iter()
                .chain(engines.allowed.iter().flatten());
            if let Some(e) = names
                .into_iter()
                .find(|e| **e != e.trim().to_ascii_lowercase())
            {
                return Err(format!("engine name {e:?} not normalised"));
            }
            let again = parse(text).map_err(|e| format!("a second parse failed: {e}"))?;
            if again.keys != policy.keys
                || again.max_skew != policy.max_skew
                || again.max_memory_bytes != policy.max_memory_bytes
            {
                return Err("two parses of one text differ".into());
            }
            Ok(true)
        },
    );
}

const MESH_KEY_TOKENS: &[&str] = &[
    "/key/swarm/psk/1.0.0/",
    "/base16/",
    "/base64/",
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "0",
    "f",
    "F",
    "g",
    "-",
    "+",
    "é",
    "€",
    "\u{feff}",
    "\u{10348}",
    "00",
    "0x",
];

/// A mesh key file with a mutated text must load or be refused, never panic; a key that loads
/// writes out (`Display`) to a file that loads to the same key.
#[test]
fn mesh_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.key");
    let hex: String = (0..32u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(37)))
        .collect();
    let seeds: Vec<Vec<u8>> = [
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n"),
        format!(
            "/key/swarm/psk/1.0.0/\r\n/base16/\r\n{}",
            hex.to_uppercase()
        ),
        format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n# a comment\n"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let tokens: Vec<&[u8]> = MESH_KEY_TOKENS.iter().map(|t| t.as_bytes()).collect();
    run(
        "mesh-key-files",
        &seeds,
        |rng| {
            let mut input = rng.pick(&seeds).clone();
            mutate_bytes(rng, &mut input, &tokens, &seeds);
            input
        },
        |bytes| {
            std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
            let Ok(key) = load_mesh_key(&path) else {
                return Ok(false);
            };
            std::fs::write(&path, key.to_string()).map_err(|e| e.to_string())?;
            match load_mesh_key(&path) {
                Ok(again) if again.fingerprint() == key.fingerprint() => Ok(true),
                other => Err(format!("the key written out loads as {other:?}")),
            }
        },
    );
}

/// Found by `mesh_key_files`: a key line of 64 bytes that are not 64 ASCII characters made
/// `libp2p-pnet` slice a character in two and panic (`load_mesh_key` now refuses non-ASCII).
#[test]
fn a_mesh_key_with_a_multibyte_character_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.key");
    for line in [
        format!("0é{}", "0".repeat(61)),
        format!("00\u{feff}{}", "a".repeat(59)),
    ] {
        assert_eq!(line.len(), 64);
        std::fs::write(&path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{line}\n")).unwrap();
        let e = load_mesh_key(&path).unwrap_err().to_string();
        assert!(e.contains("not a mesh key"), "{e}");
    }
}
