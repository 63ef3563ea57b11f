//! `papo trust`, the advice for a fingerprint that does not match, and the command line's
//! shell conventions (boolean variables, completions, man page, subcommand help), run as the
//! real `papo` binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use papo_protocol::Fingerprint;
use papo_server::testing::{unique_name, TestServer};
use papo_server::tls::TlsMode;

const PASSWORD: &str = "trusting password";

/// `papo` with `home` as its home and no `PAPO_*` variable but `env`.
fn papo(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_papo"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("PAPO_")) {
        command.env_remove(key);
    }
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .envs(env.iter().copied());
    command
}

/// Runs `command` with `input` on its standard input.
fn run(command: &mut Command, input: &str) -> Output {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn known_servers(home: &Path) -> String {
    std::fs::read_to_string(home.join("data/papo/known_servers")).unwrap_or_default()
}

#[test]
fn trust_pins_a_given_fingerprint_only_if_the_server_presents_it() {
    let server = TestServer::start();
    let (addr, shown) = (server.addr.to_string(), server.fingerprint.unwrap());
    let home = tempfile::tempdir().unwrap();

    let other = Fingerprint::of(b"another certificate");
    let wrong = run(&mut papo(home.path(), &["trust", &addr, &other.to_string()], &[]), "");
    assert_eq!(wrong.status.code(), Some(1));
    let advice = text(&wrong.stderr);
    assert!(advice.contains("does not match the fingerprint you gave"), "{advice}");
    assert!(advice.contains(&other.to_string()) && advice.contains(&shown.to_string()), "{advice}");
    assert_eq!(known_servers(home.path()), "", "nothing saved");

    let right = run(&mut papo(home.path(), &["trust", &addr, &shown.to_string()], &[]), "");
    assert!(right.status.success(), "{}", text(&right.stderr));
    assert!(text(&right.stdout).starts_with(&format!("trusted {addr} {shown}")));
    assert!(known_servers(home.path()).contains(&format!("{addr} {shown}")));

    // From now on the scriptable commands need no --trust-fingerprint.
    let ana = unique_name("ana");
    let register = run(
        &mut papo(
            home.path(),
            &["register", "--server", &addr, "--user", &ana],
            &[("PAPO_PASSWORD", PASSWORD)],
        ),
        "",
    );
    assert_eq!(text(&register.stdout), format!("created account {ana}\n"), "{}", text(&register.stderr));
    let again = run(&mut papo(home.path(), &["trust", &addr], &[]), "");
    assert_eq!(text(&again.stdout), format!("{addr} is already trusted: {shown}\n"));
}

#[test]
fn trust_without_a_fingerprint_shows_it_and_asks() {
    let server = TestServer::start();
    let (addr, shown) = (server.addr.to_string(), server.fingerprint.unwrap().to_string());
    let home = tempfile::tempdir().unwrap();

    let declined = run(&mut papo(home.path(), &["trust", &addr], &[]), "no\n");
    assert_eq!(declined.status.code(), Some(1));
    assert!(text(&declined.stdout).contains(&shown), "the question shows the fingerprint");
    assert!(
        text(&declined.stderr).contains("is not trusted; nothing was saved"),
        "{}",
        text(&declined.stderr)
    );
    assert_eq!(known_servers(home.path()), "");

    let accepted = run(&mut papo(home.path(), &["trust", &addr], &[]), "yes\n");
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    assert!(known_servers(home.path()).contains(&shown));
}

#[test]
fn trust_refuses_a_changed_certificate_and_has_nothing_to_pin_for_a_trusted_ca() {
    let server = TestServer::start();
    let addr = server.addr.to_string();
    let home = tempfile::tempdir().unwrap();
    let earlier = Fingerprint::of(b"the certificate it had before");
    std::fs::create_dir_all(home.path().join("data/papo")).unwrap();
    std::fs::write(home.path().join("data/papo/known_servers"), format!("{addr} {earlier}\n")).unwrap();
    let changed = run(&mut papo(home.path(), &["trust", &addr], &[]), "yes\n");
    assert_eq!(changed.status.code(), Some(1));
    assert!(text(&changed.stderr).contains("CHANGED"), "{}", text(&changed.stderr));
    assert!(known_servers(home.path()).ends_with(&format!("{addr} {earlier}\n")), "left as it was");

    let plain = TestServer::start_with(|config| config.tls = TlsMode::Off);
    let output = run(&mut papo(home.path(), &["trust", &plain.addr.to_string()], &[]), "");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("runs without TLS"), "{}", text(&output.stderr));
}

#[test]
fn an_unreachable_server_is_said_once() {
    let home = tempfile::tempdir().unwrap();
    let env = [("PAPO_PASSWORD", PASSWORD)];
    for args in [&["contacts", "--server", "127.0.0.1:1", "--user", "ana"][..], &["trust", "127.0.0.1:1"][..]]
    {
        let output = run(&mut papo(home.path(), args, &env), "");
        let message = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(message.starts_with("error: cannot reach the server at 127.0.0.1:1: "), "{message}");
        assert_eq!(message.matches("os error").count(), 1, "{message}");
    }
}

#[test]
fn papo_plaintext_takes_1_0_true_false_yes_no() {
    let server = TestServer::start_with(|config| config.tls = TlsMode::Off);
    let home = tempfile::tempdir().unwrap();
    for value in ["1", "true", "yes"] {
        let ana = unique_name("ana");
        let args = ["register", "--server", &server.addr.to_string(), "--user", &ana];
        let output =
            run(&mut papo(home.path(), &args, &[("PAPO_PASSWORD", PASSWORD), ("PAPO_PLAINTEXT", value)]), "");
        assert!(output.status.success(), "PAPO_PLAINTEXT={value}: {}", text(&output.stderr));
    }
    for value in ["0", "false", "no"] {
        let args = ["register", "--server", &server.addr.to_string(), "--user", "bia"];
        let output =
            run(&mut papo(home.path(), &args, &[("PAPO_PASSWORD", PASSWORD), ("PAPO_PLAINTEXT", value)]), "");
        assert!(text(&output.stderr).contains("runs without TLS"), "PAPO_PLAINTEXT={value}: TLS expected");
    }
}

#[test]
fn completions_man_page_and_subcommand_help() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = run(&mut papo(home.path(), &["completions", shell], &[]), "");
        let script = text(&output.stdout);
        assert!(script.contains("papo") && script.contains("trust-fingerprint"), "{shell}");
    }
    let man = text(&run(&mut papo(home.path(), &["man"], &[]), "").stdout);
    assert!(man.contains(".TH papo 1") && man.contains("trust"), "{man}");
    for subcommand in ["register", "send", "history", "contacts"] {
        let help = text(&run(&mut papo(home.path(), &[subcommand, "--help"], &[]), "").stdout);
        assert!(help.contains(&format!("Example:\n  PAPO_PASSWORD=... papo {subcommand} ")), "{help}");
        assert!(help.contains("1-32 characters of a-z, 0-9"), "{subcommand}: {help}");
    }
    let help = text(&run(&mut papo(home.path(), &["history", "--help"], &[]), "").stdout);
    assert!(help.contains("--limit <N>"), "{help}");
    let help = text(&run(&mut papo(home.path(), &["trust", "--help"], &[]), "").stdout);
    assert!(help.contains("Examples:\n  papo trust 192.168.0.10\n"), "{help}");
}
