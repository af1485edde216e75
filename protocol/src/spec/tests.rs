use super::*;

#[test]
fn version_ignores_warnings_and_changes_with_content() {
    let a = WorkloadSpec::new(
        "web",
        DEFAULT_NAMESPACE,
        WorkloadKind::Pod,
        SourceFormat::Kubernetes,
    )
    .seal();
    let mut b = a.clone();
    b.warnings.push("ignored".into());
    assert_eq!(a.version, b.compute_version());
    b.annotations.insert("x".into(), "y".into());
    assert_ne!(a.version, b.compute_version());
    assert!(a.version.starts_with("sha256:"));
    assert_eq!(a.short_version().len(), 12);
}

#[test]
fn a_keyed_version_is_stable_per_key_and_not_the_plain_digest() {
    let mut a = WorkloadSpec::new(
        "db",
        DEFAULT_NAMESPACE,
        WorkloadKind::Pod,
        SourceFormat::Kubernetes,
    );
    a.config.push(ConfigObject {
        kind: ConfigKind::Secret,
        name: "creds".into(),
        data: [("password".to_string(), "hunter2".to_string())].into(),
        binary_keys: Vec::new(),
    });
    assert!(a.has_secrets());
    let plain = a.compute_version();
    let k1 = a.clone().seal_keyed(&[1; 32]);
    assert_ne!(k1.version, plain);
    assert_eq!(k1.version, a.clone().seal_keyed(&[1; 32]).version);
    assert_ne!(k1.version, a.clone().seal_keyed(&[2; 32]).version);
    assert!(k1.version.starts_with("sha256:"));
}

#[test]
fn a_rollout_batch_is_at_least_one_and_percentages_round_down() {
    let pct = |p| Rollout::Rolling {
        max_unavailable: Amount::Percent(p),
    };
    assert_eq!(pct(25).batch(3), 1);
    assert_eq!(pct(50).batch(4), 2);
    assert_eq!(pct(0).batch(4), 1);
    assert_eq!(
        Rollout::Rolling {
            max_unavailable: Amount::Count(2)
        }
        .batch(5),
        2
    );
    assert_eq!(Rollout::Recreate.batch(3), 3);
}
