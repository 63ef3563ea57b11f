//! The README documents exactly the flags `papo-server --help` has, with the same
//! environment variables and defaults, and the test command CI runs.

#[path = "support/readme.rs"]
mod readme;

use std::collections::BTreeMap;

use readme::{flags, help, help_flags, section};

#[test]
fn server_flags_match_the_help() {
    let in_help = help_flags(env!("CARGO_BIN_EXE_papo-server"), &[]);
    assert_eq!(
        flags(&section("Server")),
        in_help,
        "README.md's Server section and papo-server --help disagree"
    );
}

/// `--flag` → `(env, default)` as `papo-server --help` prints them (`[env: NAME=]`,
/// `[default: VALUE]`, the default up to its first comma, which starts an example).
fn help_env_and_defaults() -> BTreeMap<String, (String, String)> {
    let help = help(env!("CARGO_BIN_EXE_papo-server"), &[]);
    let mut found = BTreeMap::new();
    let mut current: Option<(String, String, String)> = None;
    let bracketed = |line: &str, tag: &str| {
        let rest = line.split(tag).nth(1)?;
        Some(rest[..rest.find([']', ',', '='])?].to_owned())
    };
    for line in help.lines() {
        if let Some(flag) = line.trim_start().strip_prefix("--") {
            found.extend(current.take().map(|(flag, env, default)| (flag, (env, default))));
            let flag = format!("--{}", flag.split_whitespace().next().unwrap());
            current = Some((flag, String::new(), String::new()));
        } else if let Some((_, env, default)) = current.as_mut() {
            if let Some(value) = bracketed(line, "[env: ") {
                *env = value;
            }
            if let Some(value) = bracketed(line, "[default: ") {
                *default = value;
            }
        }
    }
    found.extend(current.map(|(flag, env, default)| (flag, (env, default))));
    found
}

#[test]
fn server_table_gives_the_env_and_defaults_of_the_help() {
    let server = section("Server");
    let rows: Vec<Vec<&str>> = server
        .lines()
        .filter(|line| line.starts_with("| `--"))
        .map(|line| line.split('|').map(|cell| cell.trim().trim_matches('`')).collect())
        .collect();
    let help = help_env_and_defaults();
    assert_eq!(rows.len(), help.len(), "a row per flag (--help and --version aside)");
    for row in rows {
        let flag = row[1].split_whitespace().next().unwrap();
        let (env, default) = &help[flag];
        assert_eq!(row[2], env, "README.md's env for {flag}");
        if !default.is_empty() {
            assert_eq!(row[3], default, "README.md's default for {flag}");
        }
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let tests = section("Run the tests");
    let command = tests
        .lines()
        .skip_while(|line| !line.starts_with("```"))
        .nth(1)
        .expect("a command")
        .trim()
        .to_owned();
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/run")).expect(".ci/run");
    assert!(ci.lines().any(|line| line.trim() == command), ".ci/run does not run `{command}`");
    assert!(section("Quick start").contains(&command), "the quick start does not give `{command}`");
}
