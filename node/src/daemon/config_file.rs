//! `meshd --config FILE` (or `MESH_CONFIG`): settings from a TOML file, one key per long flag
//! of [`Args`] without its `--` (`data-dir = "/var/lib/mesh"`, `engines = ["podman"]`,
//! `mdns = true`, `health-timeout = "30s"`). No file is read unless one is named.
//!
//! Precedence: flag > environment variable > file > default. clap parses the command line
//! once; for every key of the file whose argument clap did not take from the command line or
//! the environment ([`clap::parser::ValueSource`]), the file's value is put in front of the
//! arguments as that flag (`--health-timeout 30s`, `--listen A --listen B`, `--mdns`), and
//! clap parses again. Values therefore go through the same parsers, defaults and conflict
//! checks as flags. Relative paths are taken from meshd's working directory, as for flags.

use std::error::Error as _;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};
use toml::de::{DeTable, DeValue};

use super::args::Args;

/// Keys that are flags but no settings.
const NOT_KEYS: [&str; 3] = ["config", "help", "version"];

/// A key of the file and its line.
type KeyLine = (String, usize);

/// A config file larger than this is refused (a typo'd path to a large file, not a config).
const MAX_BYTES: u64 = 1 << 20;

/// `meshd`'s settings from its command line, environment and config file. A `clap::Error`
/// (e.g. `--help`, an unknown flag) is returned as such, for the caller to `exit()` with.
pub fn parse<I, T>(argv: I) -> anyhow::Result<Args>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    parse_with(Args::command(), argv)
}

/// [`parse`] with a given command (tests give its arguments other environment variables).
pub fn parse_with<I, T>(cmd: clap::Command, argv: I) -> anyhow::Result<Args>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let first = cmd.clone().try_get_matches_from(&argv)?;
    let Some(path) = first.get_one::<std::path::PathBuf>("config").cloned() else {
        return Ok(Args::from_arg_matches(&first)?);
    };
    let text = read(&path)?;
    let (from_file, lines) = file_args(&cmd, &first, &path, &text)?;
    let mut full = Vec::with_capacity(argv.len() + from_file.len());
    full.extend(argv.first().cloned());
    full.extend(from_file);
    full.extend(argv.iter().skip(1).cloned());
    let matches = cmd
        .try_get_matches_from(&full)
        .map_err(|e| blame(e, &path, &lines))?;
    Ok(Args::from_arg_matches(&matches)?)
}

fn read(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_BYTES {
        bail!(
            "config file {}: {len} bytes, more than a config file has (at most {MAX_BYTES})",
            path.display()
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| anyhow!("config file {}: not UTF-8 text", path.display()))
}

/// The file's settings as flags, for the arguments not given on the command line or in the
/// environment; with the line of each key, by key.
fn file_args(
    cmd: &clap::Command,
    matches: &ArgMatches,
    path: &Path,
    text: &str,
) -> anyhow::Result<(Vec<OsString>, Vec<KeyLine>)> {
    let table = DeTable::parse(text)
        .map_err(|e| anyhow!("config file {} is not valid TOML: {e}", path.display()))?;
    let line_of = |offset: usize| {
        let before = &text.as_bytes()[..offset.min(text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    };
    let mut args = Vec::new();
    let mut lines = Vec::new();
    for (key, value) in table.get_ref().iter() {
        let (name, line) = (key.get_ref().as_ref(), line_of(key.span().start));
        let at = || format!("{}:{line}", path.display());
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(name) && !NOT_KEYS.contains(&name))
            .ok_or_else(|| {
                anyhow!(
                    "{}: unknown key `{name}` (the keys are meshd's long flags without `--`: {})",
                    at(),
                    keys(cmd).join(", ")
                )
            })?;
        lines.push((name.to_string(), line));
        let overridden = matches!(
            matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if overridden {
            continue;
        }
        let flag = OsString::from(format!("--{name}"));
        let wrong = |expected: &str| {
            anyhow!(
                "{}: `{name}` must be {expected}, not {}",
                at(),
                value.get_ref().type_str()
            )
        };
        match (arg.get_action(), value.get_ref()) {
            (ArgAction::SetTrue, DeValue::Boolean(on)) => {
                if *on {
                    args.push(flag);
                }
            }
            (ArgAction::SetTrue, _) => return Err(wrong("true or false")),
            (ArgAction::Append, DeValue::Array(items)) => {
                for item in items.iter() {
                    let DeValue::String(v) = item.get_ref() else {
                        return Err(anyhow!(
                            "{}: `{name}` must be a list of strings, not a list with a{} {}",
                            at(),
                            if item.get_ref().is_integer() { "n" } else { "" },
                            item.get_ref().type_str()
                        ));
                    };
                    args.extend([flag.clone(), OsString::from(v.as_ref())]);
                }
            }
            // One string for a list: `engines = "auto,process"` as on the command line.
            (ArgAction::Append, DeValue::String(v)) => {
                args.extend([flag, OsString::from(v.as_ref())]);
            }
            (ArgAction::Append, _) => return Err(wrong("a list of strings")),
            (_, v) => {
                let v = scalar(v).ok_or_else(|| wrong("a string or a number"))?;
                args.extend([flag, v.into()]);
            }
        }
    }
    Ok((args, lines))
}

/// A string or a number as the flag's text; `None` for booleans, lists, tables, dates.
fn scalar(v: &DeValue<'_>) -> Option<String> {
    match v {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Float(f) => Some(f.as_str().to_string()),
        _ => None,
    }
}

/// The keys a config file may have, in the order of `meshd --help`.
pub fn keys(cmd: &clap::Command) -> Vec<&str> {
    cmd.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_KEYS.contains(l))
        .collect()
}

/// A parse error of the command line with the file's flags: a value from the file is named
/// by its file and line (values given as flags or environment variables were not replaced).
fn blame(e: clap::Error, path: &Path, lines: &[KeyLine]) -> anyhow::Error {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.trim_start_matches("--").to_string(),
        _ => String::new(),
    };
    let key = arg.split([' ', '=']).next().unwrap_or("");
    let why = e
        .source()
        .map(ToString::to_string)
        .unwrap_or_else(|| first_line(&e));
    match lines.iter().find(|(k, _)| k == key) {
        Some((_, line))
            if matches!(
                e.kind(),
                ErrorKind::ValueValidation | ErrorKind::InvalidValue
            ) =>
        {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => format!(" {v:?}"),
                _ => String::new(),
            };
            anyhow!("{}:{line}: `{key}`{value}: {why}", path.display())
        }
        _ => anyhow!(
            "{} (with the settings of {})",
            first_line(&e),
            path.display()
        ),
    }
}

fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or("");
    line.trim_start_matches("error: ").to_string()
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
