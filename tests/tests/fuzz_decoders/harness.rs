//! The fuzz loop and the mutators every group shares: a deterministic xorshift RNG, byte-level
//! mutations with format tokens, and structure-aware mutations of JSON trees.

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Slowest acceptable single decode (with its consistency checks).
pub const MAX_CALL: Duration = Duration::from_secs(1);

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the decoder made of one input: accepted (and consistent) or refused. A panic, a call
/// over [`MAX_CALL`] or an `Err` (an inconsistency) is a failure.
pub type Outcome = Result<bool, String>;

/// Runs one decoder group: every seed first (each must be accepted), then mutated inputs from
/// `next_input` for `MESH_FUZZ_SECONDS` (default 3) or `MESH_FUZZ_ITERATIONS`, whichever ends
/// first. A failing input is written to the temporary directory and its path printed.
pub fn run(
    group: &str,
    seeds: &[Vec<u8>],
    mut next_input: impl FnMut(&mut Rng) -> Vec<u8>,
    mut check: impl FnMut(&[u8]) -> Outcome,
) {
    let budget = Duration::from_secs(env_number("MESH_FUZZ_SECONDS", 3));
    let max_iterations = env_number("MESH_FUZZ_ITERATIONS", u64::MAX);
    let seed = env_number("MESH_FUZZ_SEED", 0x9E37_79B9_7F4A_7C15);
    let salt = group.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng::new(seed ^ salt);
    assert!(!seeds.is_empty(), "{group}: no seeds");
    let started = Instant::now();
    let (mut iterations, mut accepted, mut refused) = (0u64, 0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let fail = |iteration: u64, input: &[u8], what: String| -> ! {
        failed(group, seed, iteration, input, &what)
    };
    loop {
        let input = match seeds.get(iterations as usize) {
            Some(s) => s.clone(),
            None if iterations >= max_iterations || started.elapsed() >= budget => break,
            None => next_input(&mut rng),
        };
        iterations += 1;
        let call = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(&input)));
        let elapsed = call.elapsed();
        slowest = slowest.max(elapsed);
        match outcome {
            Err(_) => fail(iterations, &input, "panicked".into()),
            Ok(_) if elapsed > MAX_CALL => fail(iterations, &input, format!("took {elapsed:?}")),
            Ok(Err(why)) => fail(iterations, &input, why),
            Ok(Ok(false)) if iterations as usize <= seeds.len() => {
                fail(iterations, &input, "an unmutated seed was refused".into())
            }
            Ok(Ok(true)) => accepted += 1,
            Ok(Ok(false)) => refused += 1,
        }
    }
    let elapsed = started.elapsed();
    println!(
        "fuzz {group}: {iterations} inputs in {elapsed:.1?} ({:.0}/s; {accepted} accepted, {refused} refused; slowest call {slowest:?})",
        iterations as f64 / elapsed.as_secs_f64().max(1e-9)
    );
}

fn failed(group: &str, seed: u64, iteration: u64, input: &[u8], what: &str) -> ! {
    let path = std::env::temp_dir().join(format!("mesh-fuzz-{group}-{seed}-{iteration}.bin"));
    std::fs::write(&path, input).expect("write the failing input");
    panic!(
        "{group}, iteration {iteration} (MESH_FUZZ_SEED={seed}): {what}; input saved to {}",
        path.display()
    );
}

/// Mutates `input` one to four times: bit flips, tokens inserted or written over, chunks
/// copied, cut or taken from another input, and big-endian lengths set to edge values.
pub fn mutate_bytes(rng: &mut Rng, input: &mut Vec<u8>, tokens: &[&[u8]], donors: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            0 if len > 0 => input[rng.below(len)] ^= 1 << rng.below(8),
            1 if !tokens.is_empty() => {
                let token = rng.pick(tokens);
                input.splice(at..at, token.iter().copied());
            }
            2 if !tokens.is_empty() => {
                // Written over: the length stays (a fixed-size field gets other content).
                let token = rng.pick(tokens);
                let end = (at + token.len()).min(len);
                input.splice(at..end, token.iter().copied());
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let copy = input[start..(start + 1 + rng.below(64)).min(len)].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, copy);
            }
            4 => input.truncate(at),
            5 if len > 0 => {
                let end = (at + 1 + rng.below(32)).min(len);
                input.drain(at.min(end)..end);
            }
            6 if !donors.is_empty() => {
                let other = rng.pick(donors);
                input.truncate(at);
                input.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            7 if len >= 2 => {
                let i = rng.below(len - 1);
                let v = [0u16, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff][rng.below(9)];
                input[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            _ if len > 0 => input[rng.below(len)] = *rng.pick(&[0, 0x7f, 0x80, 0xff, b'"', b'{']),
            _ => input.push(rng.below(256) as u8),
        }
    }
}

/// Edge values a JSON node may be replaced with.
fn edge_value(rng: &mut Rng) -> Value {
    use serde_json::json;
    match rng.below(16) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(u32::MAX),
        5 => json!(u32::MAX as u64 + 1),
        6 => json!(u64::MAX),
        7 => json!(i64::MIN),
        8 => json!(1.5),
        9 => json!(1e300),
        10 => json!(""),
        11 => json!("x".repeat(rng.below(3000))),
        12 => json!([]),
        13 => json!({}),
        14 => json!("\u{0}\u{feff}é/../"),
        _ => json!(["sealed", "plain", "deleted", "every-node", "count", "Pod"][rng.below(6)]),
    }
}

/// Mutates one node of a JSON tree: a scalar or subtree replaced (by an edge value or a node
/// of a donor tree), a string edited, a number moved by one, an entry removed or duplicated.
pub fn mutate_json(rng: &mut Rng, value: &mut Value, donors: &[Value], keys: &[&str]) {
    let mut node = value;
    loop {
        let children = match node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if children == 0 || rng.chance(3) {
            break;
        }
        let i = rng.below(children);
        node = match node {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).expect("index within the object"),
            _ => unreachable!("only containers have children"),
        };
    }
    match rng.below(6) {
        0 => *node = edge_value(rng),
        1 if !donors.is_empty() => {
            let mut donor = rng.pick(donors);
            while let Some(child) = match donor {
                Value::Array(a) if !a.is_empty() && !rng.chance(3) => Some(rng.pick(a)),
                Value::Object(o) if !o.is_empty() && !rng.chance(3) => {
                    o.values().nth(rng.below(o.len()))
                }
                _ => None,
            } {
                donor = child;
            }
            *node = donor.clone();
        }
        2 if node.is_string() => {
            let mut bytes = node.as_str().unwrap_or_default().as_bytes().to_vec();
            mutate_bytes(
                rng,
                &mut bytes,
                &[b"/", b"..", b"\n", b"\xc3\xa9", b":"],
                &[],
            );
            *node = Value::String(String::from_utf8_lossy(&bytes).into_owned());
        }
        3 if node.is_u64() => {
            let n = node.as_u64().unwrap_or_default();
            *node = serde_json::json!([n.wrapping_add(1), n.wrapping_sub(1), n / 2][rng.below(3)]);
        }
        4 => match node {
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                if rng.chance(2) {
                    a.remove(i);
                } else {
                    let copy = a[i].clone();
                    a.push(copy);
                }
            }
            Value::Object(o) if !o.is_empty() => {
                let key = o
                    .keys()
                    .nth(rng.below(o.len()))
                    .cloned()
                    .unwrap_or_default();
                o.remove(&key);
            }
            _ => *node = edge_value(rng),
        },
        _ => {
            if let (Value::Object(o), false) = (&mut *node, keys.is_empty()) {
                o.insert(rng.pick(keys).to_string(), edge_value(rng));
            } else {
                *node = edge_value(rng);
            }
        }
    }
}
