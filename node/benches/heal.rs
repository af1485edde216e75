//! Self-healing benchmark on real `meshd` processes (loopback): the time from `kill -9` of a
//! provider to its replacement Running, median and max over 10 kills, at several heartbeat
//! intervals (the default, 5 s, among them); and the time from a node's restart after
//! `kill -9` to all its workloads Running again, with 100 mock workloads and with 10 Podman
//! pods (when Podman runs here). Writes its figures into `docs/benchmarks.md` between the
//! `heal` markers.
//!
//! Run: `cargo bench -p mesh-node --bench heal` (`MESH_BENCH_HEARTBEATS=1s,5s` to choose the
//! intervals; `MESH_BENCH_KILLS=N`).

#![allow(clippy::unwrap_used)] // a bench: a panic is the failure report

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_node::client::{Client, Target};
use mesh_node::testnet::{self, Testnet};
use mesh_protocol::api::Deployment;
use mesh_protocol::wire::Provider;
use mesh_protocol::Phase;
use support::{signed, user, wait, Down};

const REPLICAS: u32 = 3;

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn manifest(name: &str, engine: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    beemesh.io/runtime-engine: {engine}\nspec:\n  containers:\n  - name: main\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
    )
}

async fn up(opts: testnet::Options) -> Testnet {
    tokio::task::spawn_blocking(move || testnet::up(&opts))
        .await
        .unwrap()
        .unwrap()
}

fn client(node: &testnet::TestnetNode) -> Client {
    Client::new(Target::Unix(node.api_socket.clone()))
}

/// The peers running `web`, as node 0 sees them.
async fn running(observer: &Client) -> Option<Vec<String>> {
    let providers: Vec<Provider> = observer.get("/discover/web").await.ok()?;
    Some(providers.into_iter().map(|p| p.peer_id).collect())
}

/// Sends `signal` (`-KILL`: the process dies and its connections reset; `-STOP`: it freezes,
/// silent but connected) to a provider of a 3-replica workload `kills` times, each time
/// timing until node 0 sees 3 running replicas none of which is on a signalled node. Node 0
/// runs nothing (it observes); the mesh has a spare node for every kill. Stopped nodes are
/// killed when the testnet goes down.
async fn kills(heartbeat: Duration, kills: usize, signal: &str, meshd: &Path) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let nodes = 1 + REPLICAS as usize + kills;
    let net = up(testnet::Options {
        dir: dir.path().to_path_buf(),
        nodes,
        engines: Some("mock".into()),
        meshd: meshd.to_path_buf(),
        extra_args: vec![
            "--log".into(),
            "warn".into(),
            "--heartbeat-interval".into(),
            humantime::format_duration(heartbeat).to_string(),
        ],
        first_engines: Some("none".into()),
        trust_key: Some(user().public().to_peer_id()),
    })
    .await;
    let _down = Down(dir.path().to_path_buf());
    let observer = client(&net.nodes[0]);
    wait(
        "every node to be known",
        Duration::from_secs(120),
        || async {
            let nodes: Vec<mesh_protocol::wire::NodeInfo> = observer.get("/nodes").await.ok()?;
            (nodes.len() >= nodes_len(&net)).then_some(())
        },
    )
    .await;
    let answer = observer
        .post(
            "/deployments",
            &signed(
                manifest("web", "mock", "localhost/mesh-test:latest"),
                Some(REPLICAS),
            ),
        )
        .await
        .unwrap();
    assert!(answer.status.is_success(), "apply: {:?}", answer.body);
    wait("3 running", Duration::from_secs(60), || async {
        running(&observer)
            .await
            .filter(|r| r.len() == REPLICAS as usize)
    })
    .await;
    armed(&net, heartbeat).await;
    let mut killed: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for k in 0..kills {
        let now = running(&observer).await.unwrap();
        let victim = net.nodes.iter().find(|n| now.contains(&n.peer_id)).unwrap();
        killed.insert(victim.peer_id.clone());
        let t0 = Instant::now();
        let sent = std::process::Command::new("kill")
            .args([signal, &victim.pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} {}", victim.pid);
        let killed_now = killed.clone();
        wait("the replacement", Duration::from_secs(120), || {
            let killed = killed_now.clone();
            let observer = &observer;
            async move {
                let r = running(observer).await?;
                (r.len() == REPLICAS as usize && r.iter().all(|p| !killed.contains(p)))
                    .then_some(())
            }
        })
        .await;
        let took = t0.elapsed();
        eprintln!("heartbeat {heartbeat:?}: kill {signal} {k}: replaced in {took:?}");
        out.push(took);
    }
    out
}

/// Waits until every node heals (`/health`: up for a round of announcements and
/// heartbeats) and the record is past its apply's grace (a heartbeat's validity after it
/// was issued, during which its entry node places it): from then on a kill is healed.
async fn armed(net: &Testnet, heartbeat: Duration) {
    let record: mesh_protocol::api::RecordInfo =
        client(&net.nodes[0]).get("/records/web").await.unwrap();
    let grace_ends = record.issued_at + (heartbeat * 3 + Duration::from_secs(2)).as_millis() as u64;
    wait("healing to be armed", Duration::from_secs(120), || async {
        for node in &net.nodes {
            let health: mesh_protocol::api::Health = client(node).get("/health").await.ok()?;
            if !health.self_healing {
                return None;
            }
        }
        (mesh_runtime::now_millis() > grace_ends).then_some(())
    })
    .await;
}

fn nodes_len(net: &Testnet) -> usize {
    net.nodes.len()
}

/// One node with `count` workloads of `engine`: killed with SIGKILL and started again on its
/// data directory; the time from the start until every workload is Running.
async fn restart(count: usize, engine: &str, image: &str, meshd: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let opts = testnet::Options {
        dir: dir.path().to_path_buf(),
        nodes: 1,
        engines: Some(engine.into()),
        meshd: meshd.to_path_buf(),
        extra_args: vec!["--log".into(), "warn".into()],
        first_engines: None,
        trust_key: Some(user().public().to_peer_id()),
    };
    let net = up(opts.clone()).await;
    let _down = Down(dir.path().to_path_buf());
    let node = client(&net.nodes[0]);
    for i in 0..count {
        let name = format!("w{i:03}");
        let answer = node
            .post(
                "/deployments",
                &signed(manifest(&name, engine, image), None),
            )
            .await
            .unwrap();
        assert!(
            answer.status.is_success(),
            "apply {name}: {:?}",
            answer.body
        );
    }
    let all_running = |node: Client| async move {
        let list: Vec<Deployment> = node.get("/deployments").await.ok()?;
        (list.len() == count && list.iter().all(|d| d.phase == Phase::Running)).then_some(())
    };
    wait("all running", Duration::from_secs(300), || {
        all_running(node.clone())
    })
    .await;
    testnet::kill9(&net.nodes[0]);
    wait("the node to die", Duration::from_secs(10), || async {
        (!testnet::alive(net.nodes[0].pid)).then_some(())
    })
    .await;
    let t0 = Instant::now();
    let again = up(opts).await;
    let node = client(&again.nodes[0]);
    wait("all running again", Duration::from_secs(300), || {
        all_running(node.clone())
    })
    .await;
    let took = t0.elapsed();
    // The workloads go with the node: stopping meshd leaves them running (as it should), so
    // Podman's pods would outlive the bench.
    for i in 0..count {
        let path = format!("/deployments/w{i:03}");
        let _: serde_json::Value = node.delete(&path).await.unwrap();
    }
    took
}

fn podman_runs() -> bool {
    std::process::Command::new("podman")
        .args(["image", "exists", "localhost/mesh-test:latest"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Podman's API socket, which the node's Podman engine talks to.
const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let heartbeats: Vec<Duration> = std::env::var("MESH_BENCH_HEARTBEATS")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|x| humantime::parse_duration(x.trim()).ok())
                .collect()
        })
        .unwrap_or_else(|| {
            if quick {
                vec![Duration::from_secs(1)]
            } else {
                vec![
                    Duration::from_secs(1),
                    Duration::from_secs(2),
                    Duration::from_secs(5),
                ]
            }
        });
    let count = |var: &str, full: usize, quick_n: usize| -> usize {
        std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if quick { quick_n } else { full })
    };
    let n_kills = count("MESH_BENCH_KILLS", 10, 2);
    let n_freezes = count("MESH_BENCH_FREEZES", 5, 1);
    // The Podman restart row runs last: a socket that is down fails the bench now, not after
    // the kills' minutes.
    let podman = podman_runs();
    assert!(
        !podman || std::os::unix::net::UnixStream::connect(PODMAN_SOCKET).is_ok(),
        "the test image is in Podman's store but {PODMAN_SOCKET} does not answer: start the \
         service (sudo scripts/setup-engines.sh), or remove the image to skip the Podman row"
    );
    let meshd = PathBuf::from(env!("CARGO_BIN_EXE_meshd"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut table = String::from(
        "| heartbeat interval | kill -9 → replacement Running, median / max (kills) | frozen (SIGSTOP) → replacement Running, median / max (freezes) | rule when silent: suspect after 2 periods + 2 s, dead 3 periods + 2 s later (sum) | target (kill -9, default settings) |\n|---:|---:|---:|---:|---|\n",
    );
    let summary = |mut times: Vec<Duration>| -> String {
        times.sort();
        format!(
            "{} / {} ms ({})",
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            times.len()
        )
    };
    for hb in heartbeats {
        let killed = rt.block_on(kills(hb, n_kills, "-KILL", &meshd));
        let frozen = rt.block_on(kills(hb, n_freezes, "-STOP", &meshd));
        let bound = hb * 5 + Duration::from_secs(4);
        let target = if hb == Duration::from_secs(5) {
            "median ≤ 10 000 ms, max ≤ 20 000 ms"
        } else {
            ""
        };
        let row = format!(
            "| {} | {} | {} | {} ms | {target} |\n",
            humantime::format_duration(hb),
            summary(killed),
            summary(frozen),
            ms(bound),
        );
        eprint!("{row}");
        table.push_str(&row);
    }
    let mut restarts =
        String::from("| node restarted after kill -9 | start → all Running |\n|---|---:|\n");
    let mock = rt.block_on(restart(
        if quick { 10 } else { 100 },
        "mock",
        "localhost/mesh-test:latest",
        &meshd,
    ));
    restarts.push_str(&format!(
        "| {} mock workloads | {} ms |\n",
        if quick { 10 } else { 100 },
        ms(mock)
    ));
    if podman {
        let pods = rt.block_on(restart(10, "podman", "localhost/mesh-test:latest", &meshd));
        restarts.push_str(&format!("| 10 Podman pods | {} ms |\n", ms(pods)));
    } else {
        restarts.push_str("| 10 Podman pods | not measured: Podman or its test image is not available here (`scripts/setup-engines.sh`) |\n");
    }
    eprint!("{restarts}");
    let body = format!(
        "Real `meshd` processes (release build) on 127.0.0.1, started by `testnet::up`, mock engine. A 3-replica workload\n\
         on a mesh of 1 observer (no engine) + 3 + one spare node per kill; each kill sends SIGKILL (10 per interval) or\n\
         SIGSTOP (5 per interval) to a node running a replica and times until the observer's `/discover` lists 3 running\n\
         replicas, none on a signalled node (polled every 20 ms). Other settings default (provider TTL 60 s). A killed\n\
         node's connections reset, so its peers suspect it at once and confirm it dead when neither they nor two helpers\n\
         can reach it (refused), whatever the heartbeat interval; a frozen node keeps its connections and only goes silent,\n\
         so it is suspected after two missed heartbeats plus 2 s and declared dead after a further three periods plus 2 s\n\
         (a slow node must not lose its replicas). The live holder ranked first for the slot then places it.\n\
         A frozen node takes longer than the rule's sum: a suspect is judged at the start of a probe round (a ping and two\n\
         indirect probes, each bounded by the probe timeout), and the holder that places and the observer each decide alone.\n\
         Anchors at default settings (documented, not measured here): Kubernetes ≈ 350 s, Nomad ≈ 20–30 s,\n\
         Docker Swarm ≈ 15 s, memberlist/SWIM detection ≈ 5 s. Restart: one node, its workloads applied, SIGKILL, then\n\
         `meshd` started again on its data directory; time from the start until `/deployments` lists every workload\n\
         Running. {} cores.\n\n{table}\n{restarts}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print!("{body}");
    if quick {
        println!("(quick run: docs/benchmarks.md not updated)");
        return;
    }
    mesh_node::testing::update_benchmark_section("heal", &body).unwrap();
}
