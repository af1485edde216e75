//! Container engines through `meshd` against the direct tools: apply→Running of a
//! one-container Pod through meshd (Podman engine, kube play over the REST API) against
//! `podman kube play` of the same file, and a one-service Compose file through meshd
//! (Docker engine) against `docker run` of the same container. Writes its figures into
//! `docs/benchmarks.md` between the `engines` markers. Needs the Podman and Docker daemons
//! and `localhost/mesh-test:latest` (scripts/setup-engines.sh).
//!
//! Run: `cargo bench -p mesh-node --bench engines`.

#![allow(clippy::unwrap_used)] // a bench: a panic is the failure report

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mesh_node::client::{Client, Target};
use mesh_protocol::api::ApplyRequest;

const RUNS: usize = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n    imagePullPolicy: Never\n    command: [\"/bin/sleep\", \"3600\"]\n")
}

fn compose() -> String {
    "services:\n  main:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n".to_string()
}

struct Meshd(Child);

impl Drop for Meshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn through_meshd(client: &Client, manifest: String, name: &str) -> Duration {
    let req = ApplyRequest {
        manifest,
        default_name: Some(name.to_string()),
        ..Default::default()
    };
    let t = Instant::now();
    let answer = client.post("/deployments", &req).await.unwrap();
    let took = t.elapsed();
    assert!(answer.status.is_success(), "{}", answer.error_message());
    let _: serde_json::Value = client
        .delete(&format!("/deployments/{name}"))
        .await
        .unwrap();
    took
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        println!("engines bench: run with `cargo bench -p mesh-node --bench engines`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let meshd = Meshd(
        Command::new(env!("CARGO_BIN_EXE_meshd"))
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--engines",
                "podman,docker",
                "--log",
                "warn",
            ])
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            // The owner key beside the node, never in the user's home.
            .env("MESH_KEY", dir.path().join("owner.key"))
            .spawn()
            .unwrap(),
    );
    let client = Client::new(Target::Unix(dir.path().join("meshd.sock")));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get::<serde_json::Value>("/health").await.is_err() {
            assert!(Instant::now() < deadline, "meshd did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let file = dir.path().join("bench-pod.yaml");

    let (mut mesh_pod, mut direct_pod, mut mesh_compose, mut direct_docker) =
        (vec![], vec![], vec![], vec![]);
    for i in 0..RUNS {
        let name = format!("bench-pod-{i}");
        mesh_pod.push(rt.block_on(through_meshd(&client, pod(&name), &name)));

        std::fs::write(&file, pod(&format!("direct-pod-{i}"))).unwrap();
        let f = file.to_str().unwrap();
        let t = Instant::now();
        run("podman", &["kube", "play", f]);
        direct_pod.push(t.elapsed());
        run("podman", &["kube", "down", f]);

        let name = format!("bench-compose-{i}");
        mesh_compose.push(rt.block_on(through_meshd(&client, compose(), &name)));

        let cname = format!("direct-run-{i}");
        let t = Instant::now();
        run(
            "docker",
            &[
                "run",
                "-d",
                "--name",
                &cname,
                "localhost/mesh-test:latest",
                "sleep",
                "3600",
            ],
        );
        direct_docker.push(t.elapsed());
        run("docker", &["rm", "-f", &cname]);
    }
    drop(meshd);
    let rows = [
        (
            "one-container Pod",
            "meshd → Podman (kube play, REST)",
            median(mesh_pod),
            "`podman kube play`",
            median(direct_pod),
        ),
        (
            "one-service Compose",
            "meshd → Docker (bollard)",
            median(mesh_compose),
            "`docker run -d`",
            median(direct_docker),
        ),
    ];
    let mut table = String::from("| workload | through meshd | median ms | direct tool | median ms | ratio |\n|---|---|---:|---|---:|---:|\n");
    for (what, via, m, tool, d) in rows {
        table.push_str(&format!(
            "| {what} | {via} | {} | {tool} | {} | {:.2} |\n",
            ms(m),
            ms(d),
            m.as_secs_f64() / d.as_secs_f64()
        ));
    }
    let body = format!(
        "{RUNS} runs each, alternating, local image `localhost/mesh-test:latest` (`sleep 3600`). Through meshd: the whole\n\
         `POST /deployments` until Running (select, validate, image check, create, start, status), delete not timed. Direct:\n\
         the CLI's wall time until it returns (container started), teardown not timed.\n\n{table}\n"
    );
    print!("{body}");
    mesh_node::testing::update_benchmark_section("engines", &body).unwrap();
}
