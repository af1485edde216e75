//! A deterministic mutation fuzzer: every real-world manifest plus a few synthetic seeds,
//! mutated with YAML-significant edits, must parse or fail without panicking, each call
//! within one second.
//!
//! Runs for `MESH_FUZZ_SECONDS` (default 5) or `MESH_FUZZ_ITERATIONS` (default 200 000),
//! whichever ends first; `MESH_FUZZ_SEED` changes the sequence. A crashing input is written
//! to the temporary directory and its path printed.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use mesh_manifests::{parse, ParseOptions};

/// Slowest acceptable single parse.
const MAX_CALL: Duration = Duration::from_secs(1);

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    ":",
    ": ",
    "-",
    "- ",
    "&a ",
    "*a",
    "<<: ",
    "<<: *a\n",
    "<<: [*a, *b]\n",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "\n",
    "\t",
    "\r\n",
    " ",
    "  ",
    "#",
    "!",
    "!reset ",
    "!override ",
    "extends: ",
    "extends: {service: a}\n",
    "depends_on: [",
    "?",
    ",",
    "|",
    ">-",
    "---\n",
    "...\n",
    "${",
    "$",
    "$$",
    "${A:-",
    "${A:?x}",
    "}",
    "\u{feff}",
    "\0",
    "0x",
    "-1",
    "1e999",
    "~",
    "null",
    "true",
    "65536",
    "\\",
    "apiVersion: v1\nkind: Pod\n",
    "services:\n",
    "kind: List\nitems:\n",
    "&b [*a, *a, *a, *a]\n",
];

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = vec![
        b"apiVersion: beemesh.io/v1\nkind: Function\nmetadata:\n  name: f\n  annotations: {beemesh.io/resources.cpu: 500m}\n\
          spec:\n  module: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n  args: [a]\n  env: {A: b}\n  memory: 64Mi\n  timeout: 10s\n"
            .to_vec(),
        b"apiVersion: beemesh.io/v1\nkind: VirtualMachine\nmetadata: {name: vm}\nspec: {image: ubuntu, vcpus: 2, memory: 4Gi, disk: 20Gi}\n".to_vec(),
        b"a: &a [lol, lol, lol, lol, lol, lol, lol, lol]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n\
          d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d]\nservices: {web: {image: x, command: *d}}\n"
            .to_vec(),
        b"x-base: &base {image: alpine, restart: always, environment: {A: '1'}}\nx-more: &more {init: true}\n\
          services:\n  one:\n    <<: *base\n    command: sleep ${T:-1}\n  two:\n    <<: [*more, *base]\n    ports: ['8080:80', {target: 53, protocol: udp}]\n    \
          volumes: [data:/d, ./x:/x:ro, /anon]\nvolumes: {data: {}}\n"
            .to_vec(),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {t: aGk=}\n---\n\
          apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  backoffLimit: 1\n  template:\n    spec:\n      restartPolicy: Never\n      \
          containers: [{name: c, image: 'x:1', env: [{name: A, valueFrom: {configMapKeyRef: {name: c, key: k}}}]}]\n"
            .to_vec(),
        b"services:\n  base: &b {image: x, ports: ['80'], environment: {A: '1'}, depends_on: [db]}\n  db: {image: y}\n\
          \x20 web:\n    extends: base\n    ports: !override ['81']\n    environment: {A: !reset null}\n\
          \x20 api: {extends: {service: web}, depends_on: {db: {condition: service_healthy}}, command: !reset x}\n"
            .to_vec(),
        b"{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"p\"}, \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"x\"}]}}]}"
            .to_vec(),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/real-world");
    assert!(
        root.is_dir(),
        "the real-world corpus is missing: expected it at {}",
        root.display()
    );
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .expect("readable corpus")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                stack.push(path);
            } else {
                seeds.push(std::fs::read(&path).expect("readable file"));
            }
        }
    }
    seeds
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 | 2 => {
            let token = rng.pick(TOKENS).as_bytes();
            input.splice(at..at, token.iter().copied());
        }
        3 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let copy = input[start..end].to_vec();
            let to = rng.below(len + 1);
            input.splice(to..to, copy);
        }
        4 => input.truncate(at),
        5 if len > 0 => {
            let end = (at + 1 + rng.below(32)).min(len);
            input.drain(at.min(end)..end);
        }
        6 => {
            let other = rng.pick(seeds);
            let from = rng.below(other.len() + 1);
            input.truncate(at);
            input.extend_from_slice(&other[from..]);
        }
        _ => {
            // Swap in a line of another seed: keeps most of the structure valid.
            let other = rng.pick(seeds);
            let lines: Vec<&[u8]> = other.split(|b| *b == b'\n').collect();
            let line = rng.pick(&lines);
            let line_start = input[..at]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            let line_end = input[at..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(len, |p| at + p);
            input.splice(line_start..line_end, line.iter().copied());
        }
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// No input derived from the corpus makes `parse` panic or take more than a second.
#[test]
fn mutated_manifests_never_panic() {
    let budget = Duration::from_secs(env_number("MESH_FUZZ_SECONDS", 5));
    let max_iterations = env_number("MESH_FUZZ_ITERATIONS", 200_000);
    let mut rng = Rng(env_number("MESH_FUZZ_SEED", 0x9E37_79B9_7F4A_7C15).max(1));
    let seeds = seeds();
    let options = [
        ParseOptions::default(),
        ParseOptions {
            default_name: Some("fuzz".into()),
            env: [("T", "2"), ("A", ""), ("TIMEZONE", "UTC")]
                .map(|(k, v)| (k.into(), v.into()))
                .into(),
            ..ParseOptions::default()
        },
    ];
    let started = Instant::now();
    let mut iterations = 0u64;
    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut slowest = Duration::ZERO;
    while iterations < max_iterations && started.elapsed() < budget {
        iterations += 1;
        let mut input = rng.pick(&seeds).clone();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut input, &seeds);
        }
        let opts = rng.pick(&options);
        let call = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| parse(&input, opts)));
        let elapsed = call.elapsed();
        slowest = slowest.max(elapsed);
        let crash = match &outcome {
            Err(_) => Some("panicked"),
            Ok(_) if elapsed > MAX_CALL => Some("took longer than a second"),
            Ok(Err(e)) if e.to_string().contains('\n') => Some("gave a multi-line error"),
            Ok(_) => None,
        };
        if let Some(what) = crash {
            let path = std::env::temp_dir().join(format!("mesh-fuzz-{iterations}.yaml"));
            std::fs::write(&path, &input).expect("write the crashing input");
            panic!(
                "iteration {iterations}: parse {what} ({elapsed:?}); input saved to {}",
                path.display()
            );
        }
        match outcome {
            Ok(Ok(specs)) => {
                accepted += 1;
                assert!(
                    specs.iter().all(|s| s.version == s.compute_version()),
                    "every spec is sealed"
                );
                let multi_line = specs
                    .iter()
                    .flat_map(|s| &s.warnings)
                    .find(|w| w.contains('\n'));
                assert!(
                    multi_line.is_none(),
                    "iteration {iterations}: multi-line warning {multi_line:?}"
                );
            }
            _ => refused += 1,
        }
    }
    println!(
        "fuzz: {iterations} iterations in {:?} ({accepted} accepted, {refused} refused; slowest call {slowest:?})",
        started.elapsed()
    );
    assert!(iterations > 0);
}
