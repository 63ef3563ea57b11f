//! Reading README.md for the tests that keep it true; shared by the server's and the
//! client's README tests.

#![allow(dead_code)] // Each test binary uses a different part of this helper.

use std::collections::BTreeSet;

/// The whole README.
pub fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md")
}

/// The text under `## {heading}`, up to the next `## ` heading.
pub fn section(heading: &str) -> String {
    let readme = readme();
    let start = readme.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &readme[start + 4 + heading.len()..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

/// Every `--flag` in `text`.
pub fn flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| word.starts_with("--") && word.as_bytes().get(2).is_some_and(u8::is_ascii_alphabetic))
        .map(str::to_owned)
        .collect()
}

/// What `binary args… --help` prints.
pub fn help(binary: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(binary).args(args).arg("--help").output().expect("run --help");
    assert!(output.status.success(), "{binary} {args:?} --help failed");
    String::from_utf8(output.stdout).expect("utf-8 help")
}

/// The flags a binary's `--help` lists, without `--help` and `--version`.
pub fn help_flags(binary: &str, args: &[&str]) -> BTreeSet<String> {
    let mut found = flags(&help(binary, args));
    found.remove("--help");
    found.remove("--version");
    found
}
