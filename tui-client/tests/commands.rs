//! The scriptable subcommands, run as the real `papo` binary against a real server.

#[path = "commands/groups.rs"]
mod groups;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use papo_protocol::Fingerprint;
use papo_server::testing::{unique_name, TestServer};
use papo_server::tls::TlsMode;

const PASSWORD: &str = "scripted password";

fn papo(server: &TestServer, args: &[&str]) -> Output {
    papo_with(server, args, |command| {
        command.env("PAPO_PASSWORD", PASSWORD);
    })
}

fn papo_with(server: &TestServer, args: &[&str], setup: impl FnOnce(&mut Command)) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_papo"));
    command
        .args(args)
        .env("PAPO_SERVER", server.addr.to_string())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env_remove("PAPO_PASSWORD")
        .env_remove("PAPO_USER")
        .env_remove("PAPO_PLAINTEXT");
    match server.fingerprint {
        Some(fingerprint) => command.env("PAPO_TRUST_FINGERPRINT", fingerprint.to_string()),
        None => command.env_remove("PAPO_TRUST_FINGERPRINT"),
    };
    setup(&mut command);
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn register_send_history_and_contacts() {
    let server = TestServer::start();
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));
    assert_eq!(stdout(&papo(&server, &["register", "--user", &ana])), format!("created account {ana}\n"));
    // The password can also come from standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_papo"))
        .args(["register", "--server", &server.addr.to_string(), "--user", &bia, "--password-stdin"])
        .env_remove("PAPO_PASSWORD")
        .env("PAPO_TRUST_FINGERPRINT", server.fingerprint.unwrap().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    stdout(&papo(&server, &["send", "--user", &ana, &bia, "oi", "bia,", "tudo", "bem?"]));
    stdout(&papo(&server, &["send", "--user", &bia, &ana, "two\nlines"]));

    let history = stdout(&papo(&server, &["history", "--user", &ana, &bia]));
    let lines: Vec<_> = history.lines().collect();
    assert_eq!(lines.len(), 2);
    let (time, rest) = lines[0].split_once(' ').unwrap();
    assert!(
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok(),
        "{time}"
    );
    assert!(time.ends_with('Z'));
    assert_eq!(rest, format!("{ana} -> {bia}: oi bia, tudo bem?"));
    assert!(lines[1].ends_with(&format!("{bia} -> {ana}: two\\nlines")));
    let newest = stdout(&papo(&server, &["history", "--user", &ana, &bia, "--limit", "1"]));
    assert_eq!(newest.lines().count(), 1);
    assert!(newest.contains("two\\nlines"));

    let contacts = stdout(&papo(&server, &["contacts", "--user", &bia]));
    assert_eq!(contacts, format!("{ana} offline 1\n"));
}

#[test]
fn failures_are_one_line_errors_with_exit_codes() {
    let server = TestServer::start();
    let ana = unique_name("ana");
    stdout(&papo(&server, &["register", "--user", &ana]));

    let taken = papo(&server, &["register", "--user", &ana]);
    assert_eq!(taken.status.code(), Some(1));
    let stderr = String::from_utf8(taken.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: cannot create the account: the name"), "{stderr}");

    let wrong = papo_with(&server, &["contacts", "--user", &ana], |c| {
        c.env("PAPO_PASSWORD", "not it at all");
    });
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong name or password"));

    let no_password = papo_with(&server, &["contacts", "--user", &ana], |_| {});
    assert_eq!(no_password.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_password.stderr).contains("PAPO_PASSWORD"));

    let unknown = papo(&server, &["send", "--user", &ana, "nobody", "hi"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("there is no user called nobody"));

    let usage = papo(&server, &["send", "--user", &ana]);
    assert_eq!(usage.status.code(), Some(2));

    let unreachable = papo_with(&server, &["contacts", "--user", &ana, "--server", "127.0.0.1:1"], |c| {
        c.env("PAPO_PASSWORD", PASSWORD);
    });
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr)
        .starts_with("error: cannot reach the server at 127.0.0.1:1"));
}

fn stderr(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a failure: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn a_certificate_is_used_only_once_trusted_and_a_mismatch_is_explained() {
    let server = TestServer::start();
    let shown = server.fingerprint.unwrap().to_string();
    let ana = unique_name("ana");

    let unknown = stderr(&papo_with(&server, &["register", "--user", &ana], |c| {
        c.env("PAPO_PASSWORD", PASSWORD).env_remove("PAPO_TRUST_FINGERPRINT");
    }));
    assert!(unknown.contains(&shown) && unknown.contains("--trust-fingerprint"), "{unknown}");

    let other = Fingerprint::of(b"another certificate").to_string();
    let changed = stderr(&papo_with(&server, &["register", "--user", &ana], |c| {
        c.env("PAPO_PASSWORD", PASSWORD).env("PAPO_TRUST_FINGERPRINT", &other);
    }));
    assert!(
        changed.contains("does not match the fingerprint you gave")
            && changed.contains(&shown)
            && changed.contains(&other),
        "{changed}"
    );

    // Neither attempt created the account: nothing but the handshake reached the server.
    let lowercase = shown.to_lowercase().replace(':', "");
    let trusted = papo_with(&server, &["register", "--user", &ana, "--trust-fingerprint", &lowercase], |c| {
        c.env("PAPO_PASSWORD", PASSWORD).env_remove("PAPO_TRUST_FINGERPRINT");
    });
    assert_eq!(stdout(&trusted), format!("created account {ana}\n"));

    let garbled = papo(&server, &["contacts", "--user", &ana, "--trust-fingerprint", "12:34"]);
    assert_eq!(garbled.status.code(), Some(2), "a bad fingerprint is a usage error");
}

#[test]
fn talking_tls_to_a_plaintext_server_or_the_reverse_says_what_to_do() {
    let tls = TestServer::start();
    let plain = TestServer::start_with(|config| config.tls = TlsMode::Off);
    let ana = unique_name("ana");

    let to_tls = stderr(&papo(&tls, &["register", "--user", &ana, "--plaintext"]));
    assert!(to_tls.contains("this server requires TLS"), "{to_tls}");

    let to_plain = stderr(&papo_with(&plain, &["register", "--user", &ana], |c| {
        c.env("PAPO_PASSWORD", PASSWORD).env("PAPO_TRUST_FINGERPRINT", Fingerprint::of(b"x").to_string());
    }));
    assert!(
        to_plain.contains("this server runs without TLS") && to_plain.contains("--plaintext"),
        "{to_plain}"
    );

    assert_eq!(
        stdout(&papo(&plain, &["register", "--user", &ana, "--plaintext"])),
        format!("created account {ana}\n")
    );
}

#[test]
fn a_certificate_from_a_trusted_ca_needs_no_fingerprint_for_the_names_it_lists() {
    // An organisation's CA, and a certificate it issued for 127.0.0.1.
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let issued = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &rcgen::Issuer::new(ca_params, ca_key))
        .unwrap();
    let (ca_file, cert, key) =
        (dir.path().join("ca.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert, issued.pem()).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();
    let server = TestServer::start_with(|config| config.tls = TlsMode::Files { cert, key });
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));

    let with_ca = |user: &str, server_flag: Option<String>| {
        let mut args = vec!["register".to_owned(), "--user".to_owned(), user.to_owned()];
        args.extend(server_flag.into_iter().flat_map(|s| ["--server".to_owned(), s]));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        papo_with(&server, &args, |c| {
            c.env("PAPO_PASSWORD", PASSWORD)
                .env_remove("PAPO_TRUST_FINGERPRINT")
                .env("SSL_CERT_FILE", &ca_file);
        })
    };
    // No fingerprint anywhere: the CA vouches for the address dialled.
    assert_eq!(stdout(&with_ca(&ana, None)), format!("created account {ana}\n"));
    // Dialled by a name the certificate does not list, it is just an unknown certificate.
    let by_name = with_ca(&bia, Some(format!("localhost:{}", server.addr.port())));
    assert!(stderr(&by_name).contains("not signed by a trusted authority"));
    // And without the CA it is unknown too.
    let without_ca = papo_with(&server, &["register", "--user", &bia], |c| {
        c.env("PAPO_PASSWORD", PASSWORD)
            .env_remove("PAPO_TRUST_FINGERPRINT")
            .env("SSL_CERT_FILE", "/nonexistent");
    });
    assert!(stderr(&without_ca).contains("not signed by a trusted authority"));
}

#[test]
fn without_a_terminal_papo_says_what_to_use_and_exits_2() {
    let server = TestServer::start();
    let output = papo_with(&server, &[], |c| {
        c.stdin(Stdio::null());
    });
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr, "error: papo needs a terminal; for scripts use papo send/history/contacts\n");
}

#[test]
fn a_bad_server_address_is_a_usage_error_before_anything_is_tried() {
    let server = TestServer::start();
    for bad in ["127.0.0.1:99999", "lab:http", "fe80::1::2:7878", "bad host"] {
        let output = papo(&server, &[bad]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("invalid value") && stderr.contains(bad), "{stderr}");
        let output = papo(&server, &["contacts", "--user", "ana", "--server", bad]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
    }
    let output = papo_with(&server, &["contacts", "--user", "ana"], |c| {
        c.env("PAPO_SERVER", "127.0.0.1:99999");
    });
    assert_eq!(output.status.code(), Some(2), "PAPO_SERVER is checked too");
}

#[test]
fn search_prints_own_matches_oldest_first_and_nothing_of_anyone_else() {
    let server = TestServer::start();
    let (ana, bia, caio) = (unique_name("ana"), unique_name("bia"), unique_name("caio"));
    for user in [&ana, &bia, &caio] {
        stdout(&papo(&server, &["register", "--user", user]));
    }
    stdout(&papo(&server, &["send", "--user", &ana, &bia, "Lunch at noon?"]));
    stdout(&papo(&server, &["send", "--user", &bia, &ana, "yes, lunch\x1b[2J"]));
    stdout(&papo(&server, &["send", "--user", &ana, &caio, "no LUNCH for caio"]));
    stdout(&papo(&server, &["send", "--user", &bia, &caio, "secret lunch plans"]));

    let found = stdout(&papo(&server, &["search", "--user", &ana, "lunch"]));
    let rest: Vec<&str> = found.lines().map(|line| line.split_once(' ').unwrap().1).collect();
    assert_eq!(
        rest,
        [
            format!("{ana} -> {bia}: Lunch at noon?"),
            format!("{bia} -> {ana}: yes, lunch\\u{{1b}}[2J"),
            format!("{ana} -> {caio}: no LUNCH for caio"),
        ]
    );
    let with = stdout(&papo(&server, &["search", "--user", &ana, "--with", &caio, "lunch"]));
    assert_eq!(with.lines().count(), 1, "{with}");
    let newest = stdout(&papo(&server, &["search", "--user", &ana, "--limit", "1", "lunch"]));
    assert!(newest.ends_with(&format!("{ana} -> {caio}: no LUNCH for caio\n")), "{newest}");
    // bia's message to caio is theirs alone; a search with no match prints nothing.
    assert_eq!(stdout(&papo(&server, &["search", "--user", &ana, "secret"])), "");
    assert_eq!(stdout(&papo(&server, &["search", "--user", &ana, "--with", &caio, "plans"])), "");
}

#[test]
fn contacts_long_says_when_each_was_last_seen() {
    let server = TestServer::start();
    let (ana, bia, caio) = (unique_name("ana"), unique_name("bia"), unique_name("caio"));
    for user in [&ana, &bia, &caio] {
        stdout(&papo(&server, &["register", "--user", user]));
    }
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    // Logging in and out leaves a last-seen time.
    stdout(&papo(&server, &["contacts", "--user", &bia]));
    let long = stdout(&papo(&server, &["contacts", "--user", &ana, "--long"]));
    let seen = long.lines().find(|line| line.starts_with(&format!("{bia} "))).unwrap();
    let fields: Vec<&str> = seen.split(' ').collect();
    assert_eq!(fields[..3], [bia.as_str(), "offline", "0"], "{long}");
    let at = time::OffsetDateTime::parse(fields[3], &time::format_description::well_known::Rfc3339).unwrap();
    assert!(at >= before && at <= time::OffsetDateTime::now_utc(), "{at}");
    assert!(long.contains(&format!("{caio} offline 0 -\n")), "never seen: {long}");
    // Without --long, the line is as it always was.
    assert!(stdout(&papo(&server, &["contacts", "--user", &ana])).contains(&format!("{bia} offline 0\n")));
}

#[test]
fn passwd_changes_the_password_and_refuses_a_wrong_current_one() {
    let server = TestServer::start();
    let ana = unique_name("ana");
    stdout(&papo(&server, &["register", "--user", &ana]));
    let with = |current: &'static str, new: &'static str| {
        papo_with(&server, &["passwd", "--user", &ana], move |c| {
            c.env("PAPO_PASSWORD", current).env("PAPO_NEW_PASSWORD", new);
        })
    };
    let wrong = with("not the password", "a brand new one");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).starts_with("error: "), "{}", stderr(&wrong));
    assert_eq!(stderr(&wrong).lines().count(), 1, "one line: {}", stderr(&wrong));
    // Still the old password.
    stdout(&papo(&server, &["contacts", "--user", &ana]));

    let changed = with(PASSWORD, "a brand new one");
    assert_eq!(changed.status.code(), Some(0), "{}", String::from_utf8_lossy(&changed.stderr));
    let old = papo(&server, &["contacts", "--user", &ana]);
    assert_eq!(old.status.code(), Some(1), "the old password no longer works");
    let new = papo_with(&server, &["contacts", "--user", &ana], |c| {
        c.env("PAPO_PASSWORD", "a brand new one");
    });
    assert_eq!(new.status.code(), Some(0), "{}", String::from_utf8_lossy(&new.stderr));
    // Without a new password nothing is tried.
    let missing = papo(&server, &["passwd", "--user", &ana]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("set PAPO_NEW_PASSWORD"), "{}", stderr(&missing));
}

#[test]
fn logout_all_closes_every_session_and_revokes_the_saved_ones() {
    let server = TestServer::start();
    let ana = unique_name("ana");
    stdout(&papo(&server, &["register", "--user", &ana]));
    let mut elsewhere = server.connect();
    let saved = elsewhere.login(&ana, PASSWORD).unwrap();

    let out = stdout(&papo(&server, &["logout-all", "--user", &ana]));
    assert_eq!(out, format!("logged out every session of {ana}\n"));
    let closed = elsewhere.next_event().unwrap_err();
    assert!(closed.to_string().contains("logged out everywhere"), "{closed}");
    let resumed = server.connect().resume(&saved.token).unwrap_err();
    assert_eq!(resumed.code(), Some(papo_protocol::ErrorCode::InvalidToken));
    // The password still works.
    stdout(&papo(&server, &["contacts", "--user", &ana]));
    let wrong = papo_with(&server, &["logout-all", "--user", &ana], |c| {
        c.env("PAPO_PASSWORD", "not the password");
    });
    assert_eq!(wrong.status.code(), Some(1));
}

/// Issue 15: only the TUI keeps an outbox; `papo send` with the server down fails, leaves
/// nothing queued, and the script decides whether to retry.
#[test]
fn send_with_the_server_down_fails_and_queues_nothing() {
    let server = TestServer::start_with(|config| config.tls = TlsMode::Off);
    let (ana, bia) = (unique_name("ana"), unique_name("bia"));
    stdout(&papo(&server, &["register", "--user", &ana, "--plaintext"]));
    stdout(&papo(&server, &["register", "--user", &bia, "--plaintext"]));
    let address = server.addr.to_string();
    server.stop().unwrap();
    let home = tempfile::tempdir().unwrap();
    let down = Command::new(env!("CARGO_BIN_EXE_papo"))
        .args(["send", "--plaintext", "--user", &ana, "--server", &address, &bia, "while it is down"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env("PAPO_PASSWORD", PASSWORD)
        .env_remove("PAPO_USER")
        .env_remove("PAPO_SERVER")
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    let stderr = String::from_utf8(down.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("error: cannot reach the server at {address}")), "{stderr}");
    let mut kept = Vec::new();
    let mut dirs = vec![home.path().to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                kept.push(entry.path());
            }
        }
    }
    assert!(kept.iter().all(|path| !path.to_string_lossy().contains("outbox")), "{kept:?}");
}
