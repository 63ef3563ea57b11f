//! The README documents exactly the flags `papo-server --help` has, and the test command
//! CI runs.

#[path = "support/readme.rs"]
mod readme;

use readme::{flags, help_flags, section};

#[test]
fn server_flags_match_the_help() {
    let in_help = help_flags(env!("CARGO_BIN_EXE_papo-server"), &[]);
    assert_eq!(
        flags(&section("Server")),
        in_help,
        "README.md's Server section and papo-server --help disagree"
    );
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
