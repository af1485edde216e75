//! Interpolation: every form docker compose accepts, errors located at the value.

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn expand(text: &str, vars: &[(&str, &str)]) -> (std::result::Result<String, String>, Vec<String>) {
    let env = env(vars);
    let mut doc = Value::String(text.to_string());
    let mut warnings = Warnings::default();
    let result = interpolate_document(&mut doc, &env, &mut warnings)
        .map(|()| doc.as_str().unwrap_or_default().to_string())
        .map_err(|e| e.to_string());
    (result, warnings.into_vec())
}

fn ok(text: &str, vars: &[(&str, &str)]) -> String {
    expand(text, vars).0.expect("interpolates")
}

#[test]
fn every_form() {
    let vars = [("A", "a"), ("EMPTY", "")];
    assert_eq!(ok("x${A}y", &vars), "xay");
    assert_eq!(ok("$A-$A", &vars), "a-a");
    assert_eq!(ok("${MISSING:-dflt}", &vars), "dflt");
    assert_eq!(ok("${EMPTY:-dflt}", &vars), "dflt");
    assert_eq!(ok("${EMPTY-dflt}", &vars), "");
    assert_eq!(ok("${MISSING-dflt}", &vars), "dflt");
    assert_eq!(ok("${A:?boom}", &vars), "a");
    assert_eq!(ok("${EMPTY?boom}", &vars), "");
    assert_eq!(ok("${A:+alt}", &vars), "alt");
    assert_eq!(ok("${EMPTY:+alt}", &vars), "");
    assert_eq!(ok("${EMPTY+alt}", &vars), "alt");
    assert_eq!(ok("${MISSING+alt}", &vars), "");
    assert_eq!(ok("${MISSING:-${A}}", &vars), "a");
    assert_eq!(ok("${MISSING:-${OTHER:-deep}}", &vars), "deep");
    assert_eq!(ok("${HOST:-127.0.0.1}:24224", &vars), "127.0.0.1:24224");
    assert_eq!(ok("$$A and $${A}", &vars), "$A and ${A}");
    assert_eq!(
        ok("--password=\"$$(cat /run/secrets/db-password)\"", &vars),
        "--password=\"$(cat /run/secrets/db-password)\""
    );
    assert_eq!(ok("no dollars", &vars), "no dollars");
}

#[test]
fn unset_variables_are_empty_with_one_warning_each() {
    let (result, warnings) = expand("${BAR}/$BAR/${BAZ}", &[]);
    assert_eq!(result.as_deref(), Ok("//"));
    assert_eq!(
        warnings,
        [
            "(document): variable BAR is not set: using an empty string",
            "(document): variable BAZ is not set: using an empty string",
        ]
    );
    // A default silences the warning.
    assert!(expand("${BAR:-x}", &[]).1.is_empty());
}

#[test]
fn errors_are_located_at_the_value() {
    let mut doc: Value =
        serde_yaml::from_str("services:\n  web:\n    image: \"${TAG:?set TAG first}\"\n")
            .expect("yaml");
    let err = interpolate_document(&mut doc, &BTreeMap::new(), &mut Warnings::default())
        .expect_err("required");
    assert_eq!(
        err.to_string(),
        "services.web.image: required variable TAG is missing a value: set TAG first"
    );
    for bad in ["$(date)", "cost: 5$", "${", "${A", "${1}", "${A:x}", "$1"] {
        let (result, _) = expand(bad, &[("A", "a")]);
        assert!(result.is_err(), "{bad} must be refused");
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}x{}", "${A:-".repeat(40), "}".repeat(40));
    let (result, _) = expand(&deep, &[]);
    assert!(result.expect_err("too deep").contains("nested deeper"));
}

#[test]
fn referenced_variables_include_defaults_and_bare_environment_entries() {
    let file = b"services:\n  web:\n    image: \"app:${TAG:-latest}\"\n    \
        environment:\n      - HOME_DIR\n      - FIXED=1\n      - URL=${SCHEME:-http}://$HOST\n    \
        command: \"${REQ:?needed} ${ALT:+${INNER}}\"\n  db:\n    image: db\n    \
        environment:\n      PASSWORD:\n      USER: root\n";
    let names: Vec<String> = referenced_env_vars(file).into_iter().collect();
    assert_eq!(
        names,
        ["ALT", "HOME_DIR", "HOST", "INNER", "PASSWORD", "REQ", "SCHEME", "TAG"]
    );
    assert!(referenced_env_vars(b"apiVersion: v1\nkind: Pod\nmetadata: {name: $X}\n").is_empty());
    assert!(referenced_env_vars(b"not: [valid").is_empty());
}
