//! Loader tests: limits, merge keys, anchors, duplicate keys, JSON, and hostile input.

use std::time::{Duration, Instant};

use super::*;

/// Generous wall-clock bound for "fails fast": an unbounded expansion takes minutes and
/// gigabytes, while an unoptimised build on a busy machine needs a fraction of this.
const FAST: Duration = Duration::from_secs(3);

fn limits() -> Limits {
    Limits::default()
}

fn one(input: &str) -> Value {
    let mut docs = load(input.as_bytes(), &limits()).expect("loads");
    assert_eq!(docs.len(), 1);
    docs.remove(0).value
}

fn fails(input: &str) -> Error {
    load(input.as_bytes(), &limits()).expect_err("must fail")
}

#[test]
fn empty_inputs_are_refused_with_one_message() {
    for input in [
        "",
        "   \n\t\n",
        "# only a comment\n",
        "---\n",
        "---\n---\n# c\n",
        "\u{feff}",
    ] {
        let err = fails(input);
        assert_eq!(err.kind(), &ErrorKind::Empty, "{input:?}");
        assert_eq!(err.to_string(), "empty manifest: nothing to deploy");
    }
}

#[test]
fn size_is_checked_before_parsing() {
    let small = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let err = load(b"a: 1\nb: 2\nc: 3\n", &small).expect_err("too large");
    assert_eq!(
        err.kind(),
        &ErrorKind::TooLarge {
            size: 15,
            limit: 10
        }
    );
}

#[test]
fn document_count_is_bounded() {
    let input = "a: 1\n---\n".repeat(65);
    let err = fails(&input);
    assert_eq!(err.kind(), &ErrorKind::TooManyDocuments { limit: 64 });
    assert_eq!(
        load("a: 1\n---\n".repeat(64).as_bytes(), &limits()).map(|d| d.len()),
        Ok(64)
    );
}

/// Empty documents do not count, but a file made of nothing else stays cheap.
#[test]
fn a_flood_of_empty_documents_is_cheap() {
    let input = "---\n".repeat(MAX_BYTES_FLOOD / 4);
    let started = Instant::now();
    assert_eq!(fails(&input).kind(), &ErrorKind::Empty);
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
}

const MAX_BYTES_FLOOD: usize = crate::MAX_MANIFEST_BYTES;

#[test]
fn empty_documents_are_dropped_but_keep_their_index() {
    let docs = load(b"---\na: 1\n---\n---\nb: 2\n", &limits()).expect("loads");
    let indexes: Vec<_> = docs.iter().map(|d| d.index).collect();
    assert_eq!(indexes, [1, 3]);
}

#[test]
fn bom_and_crlf_are_tolerated() {
    let v = one("\u{feff}kind: Pod\r\nmetadata:\r\n  name: web\r\n");
    assert_eq!(v["metadata"]["name"], "web");
}

#[test]
fn duplicate_keys_are_located_at_the_duplicate() {
    let err = fails("spec:\n  selector: 1\n  replicas: 3\n  selector: 2\n");
    assert_eq!(err.line_column(), Some((4, 3)), "{err}");
    assert_eq!(
        err.to_string(),
        "line 4, column 3: duplicate key \"selector\""
    );
    let json = fails("{\"a\": 1,\n \"a\": 2}");
    assert!(
        matches!(json.kind(), ErrorKind::Syntax { line: 2, .. }),
        "{json}"
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = fails("a: 1\nb: [1, 2\nc: 3\n");
    let (line, _) = err.line_column().expect("located");
    assert!(line >= 2, "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("line {line}, column ")),
        "{err}"
    );
    let err = fails("a:\n\t- b\n");
    assert!(err.line_column().is_some(), "{err}");
}

#[test]
fn merge_keys_apply_with_local_keys_winning() {
    let v = one(
        "x-base: &base {image: alpine, restart: always, init: true}\n\
         x-more: &more {restart: no, user: root}\n\
         one:\n  <<: *base\n  restart: on-failure\n\
         two:\n  <<: [*more, *base]\n",
    );
    assert_eq!(v["one"]["image"], "alpine");
    assert_eq!(v["one"]["restart"], "on-failure");
    assert!(v["one"].get("<<").is_none());
    // Earlier mappings in a merge list win.
    assert_eq!(v["two"]["restart"], "no");
    assert_eq!(v["two"]["user"], "root");
    assert_eq!(v["two"]["init"], true);
}

#[test]
fn merge_keys_nest_through_anchors() {
    let v = one("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n");
    assert_eq!(v["c"]["x"], 1);
    assert_eq!(v["c"]["y"], 2);
    assert_eq!(v["c"]["z"], 3);
}

#[test]
fn bad_merge_values_are_refused() {
    let err = fails("a:\n  <<: 3\n  b: 1\n");
    assert!(
        err.to_string().contains("merge key << takes a mapping"),
        "{err}"
    );
    assert!(err.line_column().is_some());
    let err = fails("a: &a {x: 1}\nb:\n  <<: *a\n  <<: *a\n");
    assert!(err.to_string().contains("duplicate merge key"), "{err}");
}

#[test]
fn unknown_tags_are_refused_with_a_location() {
    let err = fails("services:\n  web:\n    ports: !custom []\n");
    assert_eq!(
        err.to_string(),
        "line 3, column 12: YAML tag !custom is not supported (Compose files accept !reset and \
         !override)"
    );
    let err = fails("services:\n  web:\n    !override ports: []\n");
    assert_eq!(
        err.to_string(),
        "line 3, column 5: YAML tag !override is not supported on a key: tag the value"
    );
    // Core tags are resolved by the parser.
    assert_eq!(one("a: !!str 123\n")["a"], "123");
}

/// `!reset` and `!override` are kept for the Compose layer, with or without a value, in
/// every position a value can take.
#[test]
fn compose_tags_are_kept_as_tagged_values() {
    let v = one(
        "ports: !reset []\nuser: !reset\nimage: !override x\nenv: !override {A: !reset 1}\n\
         list: [!reset a, b]\n",
    );
    let tag = |v: &Value| match v {
        Value::Tagged(t) => (t.tag.to_string(), t.value.clone()),
        other => panic!("not tagged: {other:?}"),
    };
    assert_eq!(tag(&v["ports"]), ("!reset".into(), Value::Sequence(vec![])));
    assert_eq!(tag(&v["user"]).0, "!reset");
    assert_eq!(tag(&v["image"]), ("!override".into(), "x".into()));
    let (name, env) = tag(&v["env"]);
    assert_eq!(name, "!override");
    assert_eq!(tag(&env["A"]), ("!reset".into(), 1.into()));
    assert_eq!(tag(&v["list"][0]).0, "!reset");
    // A local tagged key wins over a merged one like any local key.
    let v = one("a: &a {p: 1, q: 2}\nb: {<<: *a, p: !reset 0}\n");
    assert_eq!(tag(&v["b"]["p"]).0, "!reset");
    assert_eq!(v["b"]["q"], 2);
}

#[test]
fn json_is_read_with_json_errors() {
    let v = one("{\n\t\"kind\": \"Pod\",\n\t\"n\": [1, 2]\n}\n");
    assert_eq!(v["kind"], "Pod");
    let err = fails("{\n  \"kind\": \"Pod\"\n  \"x\": 1\n}");
    assert!(
        matches!(err.kind(), ErrorKind::Syntax { line: 3, .. }),
        "{err}"
    );
    // Flow-style YAML that is not JSON still loads.
    assert_eq!(
        one("{kind: Pod, metadata: {name: web}}")["metadata"]["name"],
        "web"
    );
}

/// The classic billion-laughs document is refused quickly by serde_yaml's repetition limit
/// or our budget, whichever trips first.
#[test]
fn billion_laughs_fails_fast() {
    let mut doc = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        doc.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let started = Instant::now();
    let err = fails(&doc);
    assert!(matches!(err.kind(), ErrorKind::TooComplex { .. }), "{err}");
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
}

/// Many aliases of one big anchor stay under serde_yaml's repetition limit but would build
/// gigabytes; the budget stops them.
#[test]
fn quadratic_alias_expansion_is_bounded() {
    let big: Vec<String> = (0..20_000).map(|i| format!("v{i}")).collect();
    let mut doc = format!("a: &a [{}]\nb: [", big.join(","));
    doc.push_str(&vec!["*a"; 50_000].join(","));
    doc.push_str("]\n");
    let started = Instant::now();
    let err = fails(&doc);
    assert!(matches!(err.kind(), ErrorKind::TooComplex { .. }), "{err}");
    assert!(err.to_string().contains("billion laughs"), "{err}");
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
}

#[test]
fn deep_nesting_is_refused() {
    let err = fails(&format!("{}1{}", "[".repeat(200), "]".repeat(200)));
    assert!(matches!(err.kind(), ErrorKind::TooComplex { .. }), "{err}");
    let err = fails(&format!("a: {}1{}", "[".repeat(200), "]".repeat(200)));
    assert!(matches!(err.kind(), ErrorKind::TooComplex { .. }), "{err}");
}

#[test]
fn invalid_utf8_is_a_located_error() {
    let err = load(b"a: \xff\xfe\n", &limits()).expect_err("not UTF-8");
    assert!(matches!(err.kind(), ErrorKind::Syntax { .. }), "{err}");
}
