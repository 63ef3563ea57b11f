//! The README documents exactly the flags of `papo` and its subcommands, every shortcut of
//! the help overlay, and only packages that exist.

#[path = "../../server/tests/support/readme.rs"]
mod readme;

use readme::{flags, help_flags, readme, section};

#[test]
fn client_flags_match_the_help() {
    let papo = env!("CARGO_BIN_EXE_papo");
    let mut in_help = help_flags(papo, &[]);
    for subcommand in ["register", "send", "history", "contacts", "search", "passwd", "groups", "discover"] {
        in_help.extend(help_flags(papo, &[subcommand]));
    }
    for change in ["create", "add", "remove", "leave", "rename", "delete", "handover", "members"] {
        in_help.extend(help_flags(papo, &["group", change]));
    }
    assert_eq!(flags(&section("Client")), in_help, "README.md's Client section and papo --help disagree");
}

#[test]
fn every_shortcut_is_in_the_readme_table() {
    let client = section("Client");
    for (key, what) in papo::app::keys::HELP {
        let row = format!("| {key} | {what} |");
        assert!(client.contains(&row), "README.md lacks the row {row}");
    }
}

#[test]
fn cargo_commands_name_real_packages() {
    let manifests = [("papo", "tui-client"), ("papo-server", "server"), ("papo-bench", "bench")];
    for line in readme().lines().filter(|line| line.trim_start().starts_with("cargo ")) {
        let Some(name) = line.split(" -p ").nth(1).and_then(|rest| rest.split_whitespace().next()) else {
            continue;
        };
        let (_, dir) = manifests
            .iter()
            .find(|(package, _)| *package == name)
            .unwrap_or_else(|| panic!("README.md runs unknown package {name}"));
        let toml =
            std::fs::read_to_string(format!("{}/../{dir}/Cargo.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(toml.contains(&format!("name = \"{name}\"")), "{dir}/Cargo.toml is not {name}");
    }
}
