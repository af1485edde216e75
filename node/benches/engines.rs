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

/// A one-container Kubernetes Job that exits at once (through meshd), and the Pod it is run
/// as (the anchor: `podman kube play` of it, then `podman wait` for its container).
fn job(name: &str) -> String {
    format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        image: localhost/mesh-test:latest\n        imagePullPolicy: Never\n        command: [\"/bin/true\"]\n")
}

fn job_pod(name: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: localhost/mesh-test:latest\n    imagePullPolicy: Never\n    command: [\"/bin/true\"]\n")
}

/// A Job through meshd: apply, then `GET /deployments/NAME` every 2 ms until Succeeded (at
/// the node's default settings: its exit comes from Podman's events).
async fn job_through_meshd(client: &Client, name: &str) -> Duration {
    let req = ApplyRequest {
        manifest: job(name),
        ..Default::default()
    };
    let t = Instant::now();
    let answer = client.post("/deployments", &req).await.unwrap();
    assert!(answer.status.is_success(), "{}", answer.error_message());
    let path = format!("/deployments/{name}");
    loop {
        let d: mesh_protocol::api::Deployment = client.get(&path).await.unwrap();
        match d.phase {
            mesh_protocol::Phase::Succeeded => break,
            mesh_protocol::Phase::Failed => panic!("{d:?}"),
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the job did not end");
    }
    let took = t.elapsed();
    let _: serde_json::Value = client.delete(&path).await.unwrap();
    took
}

fn compose() -> String {
    "services:\n  main:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n".to_string()
}

/// A three-service project: two services on a network of the project's own (service names
/// resolve there), one depending on another.
fn compose_three() -> String {
    let service = |name: &str, extra: &str| {
        format!("  {name}:\n    image: localhost/mesh-test:latest\n    pull_policy: never\n    command: [\"sleep\", \"3600\"]\n{extra}")
    };
    format!(
        "services:\n{}{}{}",
        service("web", "    depends_on: [cache]\n"),
        service("cache", ""),
        service("worker", "    depends_on: [cache]\n")
    )
}

/// `docker-compose` (Debian's, 1.29), if installed: the anchor of the multi-service row.
fn docker_compose() -> Option<&'static str> {
    Command::new("docker-compose")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "docker-compose")
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
    let (mut mesh_job, mut direct_job) = (vec![], vec![]);
    let (mut mesh_three, mut direct_three) = (vec![], vec![]);
    let anchor = docker_compose();
    let compose_file = dir.path().join("compose.yaml");
    std::fs::write(&compose_file, compose_three()).unwrap();
    for i in 0..RUNS {
        let name = format!("bench-job-{i}");
        mesh_job.push(rt.block_on(job_through_meshd(&client, &name)));

        let name = format!("direct-job-{i}");
        std::fs::write(&file, job_pod(&name)).unwrap();
        let f = file.to_str().unwrap();
        let t = Instant::now();
        run("podman", &["kube", "play", f]);
        run("podman", &["wait", &format!("{name}-main")]);
        direct_job.push(t.elapsed());
        run("podman", &["kube", "down", f]);

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

        let name = format!("bench-three-{i}");
        mesh_three.push(rt.block_on(through_meshd(&client, compose_three(), &name)));
        if let Some(tool) = anchor {
            let project = format!("direct-three-{i}");
            let f = compose_file.to_str().unwrap();
            let t = Instant::now();
            run(tool, &["-p", &project, "-f", f, "up", "-d"]);
            direct_three.push(t.elapsed());
            run(tool, &["-p", &project, "-f", f, "down", "-t", "0"]);
        }
    }
    drop(meshd);
    let rows = [
        (
            "one-container Job, to Succeeded",
            "meshd → Podman, exit from its wait or Podman's events",
            median(mesh_job),
            "`podman kube play` + `podman wait`",
            median(direct_job),
        ),
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
    let three = (
        "three-service Compose (one network, depends_on)",
        "meshd → Docker (bollard)",
        median(mesh_three),
        "`docker-compose up -d` (1.29, Debian)",
    );
    let three = if direct_three.is_empty() {
        table.push_str(&format!(
            "| {} | {} | {} | {} | not installed | — |\n",
            three.0,
            three.1,
            ms(three.2),
            three.3
        ));
        None
    } else {
        Some((three.0, three.1, three.2, three.3, median(direct_three)))
    };
    for (what, via, m, tool, d) in rows.into_iter().chain(three) {
        table.push_str(&format!(
            "| {what} | {via} | {} | {tool} | {} | {:.2} |\n",
            ms(m),
            ms(d),
            m.as_secs_f64() / d.as_secs_f64()
        ));
    }
    let body = format!(
        "{RUNS} runs each, alternating, local image `localhost/mesh-test:latest` (`sleep 3600`; the Job runs `/bin/true`),\n\
         meshd at its default settings (monitor poll every 1 s). Through meshd: the whole `POST /deployments` until\n\
         Running (select, validate, image check, create, start, status); for the Job, until `GET /deployments/NAME` shows\n\
         Succeeded (asked every 2 ms); delete not timed. Direct: the CLI's wall time until it returns (container started;\n\
         for the Job, `podman wait` returned), teardown not timed.\n\n{table}\n"
    );
    print!("{body}");
    mesh_node::testing::update_benchmark_section("engines", &body).unwrap();
}
