//! Bounds and the shape of errors, through the public API: empty input, size and document
//! limits, alias bombs, syntax errors with line numbers.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use mesh_manifests::{
    detect_format, parse, ErrorKind, Limits, ParseOptions, MAX_DOCUMENTS, MAX_MANIFEST_BYTES,
};
use mesh_protocol::spec::SourceFormat;

/// Generous wall-clock bound for "fails fast" (an unbounded expansion takes minutes).
const FAST: Duration = Duration::from_secs(3);

fn parse_default(
    input: &[u8],
) -> Result<Vec<mesh_protocol::spec::WorkloadSpec>, mesh_manifests::Error> {
    parse(
        input,
        &ParseOptions {
            default_name: Some("x".into()),
            ..ParseOptions::default()
        },
    )
}

#[test]
fn defaults_are_one_mebibyte_and_64_documents() {
    let limits = Limits::default();
    assert_eq!((limits.max_bytes, limits.max_documents), (1 << 20, 64));
    assert_eq!((MAX_MANIFEST_BYTES, MAX_DOCUMENTS), (1 << 20, 64));
}

#[test]
fn empty_input_has_one_message() {
    for input in ["", "\n\n", "# nothing here\n# at all\n", "---\n...\n"] {
        let e = parse_default(input.as_bytes()).expect_err("empty");
        assert_eq!(
            e.to_string(),
            "empty manifest: nothing to deploy",
            "{input:?}"
        );
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let input = vec![b'#'; MAX_MANIFEST_BYTES + 1];
    let e = parse_default(&input).expect_err("too large");
    assert_eq!(
        e.kind(),
        &ErrorKind::TooLarge {
            size: MAX_MANIFEST_BYTES + 1,
            limit: MAX_MANIFEST_BYTES
        }
    );
    let small = ParseOptions {
        limits: Limits {
            max_bytes: 8,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    assert!(matches!(
        parse(b"services: {}\n", &small).map_err(|e| e.kind().clone()),
        Err(ErrorKind::TooLarge { .. })
    ));
}

#[test]
fn too_many_documents() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n---\n";
    let e = parse_default(pod.repeat(MAX_DOCUMENTS + 1).as_bytes()).expect_err("too many");
    assert_eq!(
        e.to_string(),
        "manifest has more than 64 documents; split it into several files"
    );
    let few = ParseOptions {
        limits: Limits {
            max_documents: 2,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    assert!(matches!(
        parse(pod.repeat(3).as_bytes(), &few).map_err(|e| e.kind().clone()),
        Err(ErrorKind::TooManyDocuments { limit: 2 })
    ));
}

/// A "billion laughs" Compose file fails fast instead of expanding a billion strings.
#[test]
fn alias_bombs_fail_fast() {
    let mut doc = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        doc.push_str(&format!(
            "x-a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(", ")
        ));
    }
    doc.push_str("services:\n  web:\n    image: x\n    command: *a8\n");
    let started = Instant::now();
    let e = parse_default(doc.as_bytes()).expect_err("bomb");
    assert!(matches!(e.kind(), ErrorKind::TooComplex { .. }), "{e}");
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
    // Merge keys of merge keys are bounded the same way.
    let mut merges = String::from("x-m0: &m0 {k0: [a, b, c, d, e, f, g, h]}\n");
    for i in 1..40 {
        merges.push_str(&format!(
            "x-m{i}: &m{i} {{<<: *m{}, k{i}: *m{}}}\n",
            i - 1,
            i - 1
        ));
    }
    merges.push_str("services:\n  web: {image: x}\n");
    let started = Instant::now();
    let e = parse_default(merges.as_bytes()).expect_err("merge bomb");
    assert!(matches!(e.kind(), ErrorKind::TooComplex { .. }), "{e}");
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
}

#[test]
fn syntax_errors_have_line_numbers() {
    let cases: [(&str, usize); 4] = [
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [a\n", 5),
        ("services:\n  web:\n    image: x\n   bad: indent\n", 4),
        ("services:\n  web: {image: x}\n  web: {image: y}\n", 3),
        ("{\"apiVersion\": \"v1\",\n \"kind\": \"Pod\",,\n}", 2),
    ];
    for (input, line) in cases {
        let e = parse_default(input.as_bytes()).expect_err("syntax");
        let (got, _) = e
            .line_column()
            .unwrap_or_else(|| panic!("no location: {e}"));
        assert_eq!(got, line, "{e}");
        assert!(
            e.to_string().starts_with(&format!("line {line}, column ")),
            "{e}"
        );
    }
}

#[test]
fn scalars_and_unknown_shapes_are_explained() {
    let e = parse_default(b"just some text\n").expect_err("scalar");
    assert!(e.to_string().contains("expected a mapping"), "{e}");
    let e = parse_default(b"foo: 1\nbar: 2\n").expect_err("unknown");
    assert!(matches!(e.kind(), ErrorKind::UnknownFormat { .. }), "{e}");
    assert!(e.to_string().ends_with("found foo, bar"), "{e}");
}

#[test]
fn format_detection_is_structural() {
    assert_eq!(
        detect_format(b"services:\n  a: {image: x}\n"),
        Ok(SourceFormat::Compose)
    );
    assert_eq!(
        detect_format(
            b"kind: Pod\napiVersion: v1\nspec:\n  volumes:\n  - azureDisk: {kind: Managed}\n"
        ),
        Ok(SourceFormat::Kubernetes)
    );
    assert_eq!(
        detect_format(b"apiVersion: beemesh.io/v1\nkind: Function\n"),
        Ok(SourceFormat::Beemesh)
    );
}
