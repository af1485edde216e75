//! A Deployment's `strategy` says how many replicas an update replaces at once.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use mesh_manifests::{parse, ParseOptions};
use mesh_protocol::spec::{Amount, Rollout};
use mesh_protocol::WorkloadSpec;

fn deployment(strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 4\n{strategy}  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: main\n        image: nginx\n"
    )
}

fn one(yaml: &str) -> WorkloadSpec {
    parse(yaml.as_bytes(), &ParseOptions::default())
        .unwrap()
        .remove(0)
}

#[test]
fn strategies_are_read() {
    assert_eq!(one(&deployment("")).rollout, None);
    assert_eq!(
        one(&deployment("  strategy:\n    type: Recreate\n")).rollout,
        Some(Rollout::Recreate)
    );
    assert_eq!(
        one(&deployment("  strategy:\n    type: RollingUpdate\n")).rollout,
        Some(Rollout::Rolling {
            max_unavailable: Amount::Percent(25)
        })
    );
    let spec = one(&deployment(
        "  strategy:\n    rollingUpdate:\n      maxUnavailable: 2\n      maxSurge: 1\n",
    ));
    assert_eq!(
        spec.rollout,
        Some(Rollout::Rolling {
            max_unavailable: Amount::Count(2)
        })
    );
    assert_eq!(spec.rollout.unwrap().batch(4), 2);
    assert!(
        spec.warnings
            .iter()
            .any(|w| w.contains("spec.strategy.rollingUpdate.maxSurge")
                && w.contains("not honoured")),
        "{:?}",
        spec.warnings
    );
    let pct = one(&deployment(
        "  strategy:\n    rollingUpdate:\n      maxUnavailable: \"50%\"\n",
    ));
    assert_eq!(pct.rollout.unwrap().batch(4), 2);
}

#[test]
fn a_spec_without_a_strategy_keeps_its_digest() {
    // The rollout field is left out of the encoding when absent.
    let a = one(&deployment(""));
    let json = serde_json::to_string(&a).unwrap();
    assert!(!json.contains("rollout"), "{json}");
}

#[test]
fn bad_strategies_are_refused_where_written() {
    let err = |s: &str| {
        parse(deployment(s).as_bytes(), &ParseOptions::default())
            .unwrap_err()
            .to_string()
    };
    let e = err("  strategy:\n    type: BlueGreen\n");
    assert!(
        e.contains("spec.strategy.type") && e.contains("BlueGreen"),
        "{e}"
    );
    let e = err("  strategy:\n    rollingUpdate:\n      maxUnavailable: \"150%\"\n");
    assert!(
        e.contains("maxUnavailable") && e.contains("percentage"),
        "{e}"
    );
    let e = err("  strategy:\n    type: Recreate\n    rollingUpdate: {maxUnavailable: 1}\n");
    assert!(e.contains("only allowed with type RollingUpdate"), "{e}");
}
