//! The real `papo-server` binary's command line: the settings file under the environment
//! under the flags, `--print-config`, SIGHUP, `health`, log formats, completions and man page.

#[path = "support/process.rs"]
mod process;
#[path = "support/readme.rs"]
mod readme;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use papo_protocol::{Client, ClientError, ErrorCode, Reply, Request};
use papo_server::testing::PASSWORD;

const BIN: &str = env!("CARGO_BIN_EXE_papo-server");

/// `papo-server` with no `PAPO_*` variable but `env`, and `home` as every XDG directory, so
/// no settings file is found unless a test puts one there.
fn papo_server(home: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("PAPO_")) {
        command.env_remove(key);
    }
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"));
    command.envs(env.iter().copied());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run papo-server")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// `--print-config`'s settings, `key = value` lines only (comments left out).
fn printed(output: &Output) -> BTreeMap<String, String> {
    stdout(output)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line.split_once(" = ").expect("key = value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn flags_beat_the_environment_which_beats_the_settings_file() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("server.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\nbcrypt-cost = 5\nmax-connections = 7\nplaintext = true\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let settings =
        printed(&run(papo_server(home.path(), &[("PAPO_BCRYPT_COST", "6"), ("PAPO_MAX_CONNECTIONS", "8")])
            .args(["--config", config, "--max-connections", "9", "--print-config"])));
    assert_eq!(settings["listen"], "\"127.0.0.1:9000\"", "from the file");
    assert_eq!(settings["bcrypt-cost"], "6", "the environment beats the file");
    assert_eq!(settings["max-connections"], "9", "a flag beats both");
    assert_eq!(settings["plaintext"], "true", "booleans come from the file too");
    assert_eq!(settings["log"], "\"info\"", "defaults fill the rest");
    // PAPO_CONFIG names the file as --config does.
    let settings = printed(&run(papo_server(home.path(), &[("PAPO_CONFIG", config)]).arg("--print-config")));
    assert_eq!(settings["bcrypt-cost"], "5");
}

#[test]
fn the_settings_file_is_looked_for_in_the_xdg_config_directory() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("config/papo-server");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "commit-gap-us = 42\n").unwrap();
    let output = run(papo_server(home.path(), &[]).arg("--print-config"));
    assert_eq!(printed(&output)["commit-gap-us"], "42");
    assert!(stdout(&output).contains(&dir.join("config.toml").display().to_string()), "names its source");
}

#[test]
fn print_config_shows_every_setting_and_is_itself_a_settings_file() {
    let home = tempfile::tempdir().unwrap();
    let first =
        stdout(&run(papo_server(home.path(), &[]).args(["--listen", "127.0.0.1:1", "--print-config"])));
    let keys: Vec<String> = first
        .lines()
        .filter_map(|line| match line.strip_prefix("# ") {
            Some(comment) => comment.split_once(" is not set").map(|(key, _)| key.to_owned()),
            None => line.split_once(" = ").map(|(key, _)| key.to_owned()),
        })
        .map(|key| format!("--{key}"))
        .collect();
    let mut expected = readme::help_flags(BIN, &[]);
    expected.remove("--config");
    expected.remove("--print-config");
    assert_eq!(keys.iter().cloned().collect::<std::collections::BTreeSet<_>>(), expected);
    assert_eq!(keys.len(), expected.len(), "each setting once");

    let file = home.path().join("printed.toml");
    std::fs::write(&file, &first).unwrap();
    let again = stdout(&run(papo_server(home.path(), &[]).args([
        "--config",
        file.to_str().unwrap(),
        "--print-config",
    ])));
    let settings = |text: &str| {
        text.lines().filter(|line| !line.starts_with('#')).map(str::to_owned).collect::<Vec<_>>()
    };
    assert_eq!(settings(&again), settings(&first));
    // Copied to another machine, the file still leaves the threads to that machine's cores.
    for printed in [&first, &again] {
        let line = printed.lines().find(|line| line.contains("password-threads")).unwrap();
        let threads: usize = line
            .strip_prefix("# password-threads is not set; here that means ")
            .unwrap_or_else(|| panic!("an unset password-threads stays unset: {line}"))
            .parse()
            .unwrap();
        assert!(threads >= 2, "one per core, at least two: {threads}");
    }
}

#[test]
fn a_bad_settings_file_is_named_with_what_is_wrong() {
    let home = tempfile::tempdir().unwrap();
    let cases = [
        ("bcrypt-cost = 99\n", "invalid value '99' for '--bcrypt-cost <N>'"),
        ("data_dir = \"/srv\"\n", "unknown setting `data_dir`; did you mean `data-dir`?"),
        ("colour = true\n", "unknown setting `colour`; the settings are listen, data-dir,"),
        ("plaintext = \"yes\"\n", "`plaintext` is true or false"),
        ("listen = [\n", "TOML parse error"),
        ("tls-cert = \"/cert.pem\"\n", "required arguments were not provided: --tls-key"),
    ];
    for (text, expected) in cases {
        let file = home.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let output =
            run(papo_server(home.path(), &[]).args(["--config", file.to_str().unwrap(), "--print-config"]));
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {message}");
        assert!(message.starts_with(&format!("error: settings file {}: ", file.display())), "{message}");
        assert!(message.contains(expected), "{text:?} gave {message}");
    }
    let output = run(papo_server(home.path(), &[]).args(["--config", "/nonexistent/papo.toml"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read the settings file /nonexistent/papo.toml"),
        "{}",
        stderr(&output)
    );
    // A mistake on the command line is the command line's, whatever the file holds.
    std::fs::write(home.path().join("good.toml"), "bcrypt-cost = 5\n").unwrap();
    let good = home.path().join("good.toml");
    let output =
        run(papo_server(home.path(), &[]).args(["--config", good.to_str().unwrap(), "--bcrypt-cost", "3"]));
    assert!(
        stderr(&output).starts_with("error: invalid value '3' for '--bcrypt-cost <N>'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn boolean_variables_take_1_0_true_false_yes_no() {
    let home = tempfile::tempdir().unwrap();
    for (value, plaintext) in [
        ("1", "true"),
        ("0", "false"),
        ("true", "true"),
        ("false", "false"),
        ("yes", "true"),
        ("no", "false"),
    ] {
        let output = run(papo_server(home.path(), &[("PAPO_PLAINTEXT", value)]).arg("--print-config"));
        assert_eq!(printed(&output)["plaintext"], plaintext, "PAPO_PLAINTEXT={value:?}");
    }
    let output = run(papo_server(home.path(), &[("PAPO_PLAINTEXT", "maybe")]).arg("--print-config"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("invalid value 'maybe' for '--plaintext'"), "{}", stderr(&output));
}

/// Waits up to 10 s for a log line containing `needle`, and returns it.
fn log_line(server: &process::ServerProcess, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match server.log.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no log line with {needle:?}"),
        }
    }
}

#[test]
fn sighup_applies_a_new_log_filter_and_names_what_needs_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let (mut server, file) = server_with_settings(home.path(), "log = \"info\"\nbcrypt-cost = 4\n");

    std::fs::write(&file, "log = \"warn,papo_server::session=debug\"\nbcrypt-cost = 5\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(log_line(&server, "applying the new log filter").contains("log=warn,papo_server::session=debug"));
    assert!(log_line(&server, "only after a restart").contains("changed=bcrypt-cost"));
    // The new filter is in force: a connection's debug lines now show.
    server.connect("sighup-test").register("ana", PASSWORD).unwrap();
    log_line(&server, "DEBUG papo_server::session");

    std::fs::write(&file, "log = [").unwrap();
    server.signal(libc::SIGHUP);
    assert!(log_line(&server, "cannot reload the settings; keeping the current ones")
        .contains("TOML parse error"));

    // A filter that does not parse is refused as such, not named as needing a restart.
    std::fs::write(&file, "log = \"papo_server=loud\"\nbcrypt-cost = 6\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(log_line(&server, "keeping the current log filter").contains("invalid --log filter"));
    let restart = log_line(&server, "only after a restart");
    assert!(restart.trim_end().ends_with("changed=bcrypt-cost"), "{restart}");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
}

#[test]
fn sighup_applies_a_new_registration_policy_at_once() {
    let home = tempfile::tempdir().unwrap();
    let (mut server, file) = server_with_settings(home.path(), "bcrypt-cost = 4\nregistration = \"open\"\n");
    server.connect("sighup-test").register("ana", PASSWORD).unwrap();

    std::fs::write(&file, "bcrypt-cost = 4\nregistration = \"closed\"\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(log_line(&server, "applied the new registration policy").contains("registration=Closed"));
    let refused = server.connect("sighup-test").register("bia", PASSWORD).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RegistrationClosed), "{refused}");

    std::fs::write(&file, "bcrypt-cost = 4\nregistration = \"invite\"\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(log_line(&server, "applied the new registration policy").contains("registration=Invite"));
    let refused = server.connect("sighup-test").register("bia", PASSWORD).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InviteRequired), "{refused}");
    server.connect("sighup-test").login("ana", PASSWORD).unwrap();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
}

#[test]
fn sighup_applies_new_rate_limits_to_what_follows() {
    let home = tempfile::tempdir().unwrap();
    let (mut server, file) =
        server_with_settings(home.path(), "bcrypt-cost = 4\nregistrations-per-hour = 10\n");
    server.connect("sighup-test").register("ana", PASSWORD).unwrap();

    let applied = reload_limits(
        &server,
        &file,
        "bcrypt-cost = 4\nregistrations-per-hour = 1\nmessages-per-second = 5\n",
    );
    assert!(applied.contains("registrations-per-hour=1"), "{applied}");
    assert!(applied.contains("messages-per-second=5"), "{applied}");
    // ana's registration counted: at one an hour, this address has used its allowance.
    let refused = server.connect("sighup-test").register("bia", PASSWORD).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RateLimited), "{refused}");

    let applied = reload_limits(&server, &file, "bcrypt-cost = 4\nregistrations-per-hour = 3\n");
    assert!(applied.contains("registrations-per-hour=3"), "{applied}");
    server.connect("sighup-test").register("bia", PASSWORD).unwrap();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
}

/// The admission limits, each with a value for the settings file and another for its flag.
const ADMISSION_LIMITS: [(&str, &str, &str); 4] = [
    ("login-deadline-secs", "5", "6"),
    ("unauthenticated-per-address", "3", "4"),
    ("unauthenticated-percent", "20", "25"),
    ("password-threads", "3", "5"),
];

#[test]
fn the_admission_limits_are_read_from_the_file_and_their_flags_and_variables_beat_it() {
    let home = tempfile::tempdir().unwrap();
    let defaults = printed(&run(papo_server(home.path(), &[]).arg("--print-config")));
    assert_eq!(defaults["login-deadline-secs"], "30");
    assert_eq!(defaults["unauthenticated-per-address"], "32");
    assert_eq!(defaults["unauthenticated-percent"], "50");
    assert!(!defaults.contains_key("password-threads"), "unset, it is printed as a comment");

    let file = home.path().join("server.toml");
    let text: String =
        ADMISSION_LIMITS.iter().map(|(key, in_file, _)| format!("{key} = {in_file}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let config = file.to_str().unwrap();
    let from_file = printed(&run(papo_server(home.path(), &[]).args(["--config", config, "--print-config"])));
    for (key, in_file, _) in ADMISSION_LIMITS {
        assert_eq!(from_file[key], in_file, "{key} from the file");
    }
    for (key, _, by_flag) in ADMISSION_LIMITS {
        let flagged = printed(&run(papo_server(home.path(), &[]).args([
            "--config",
            config,
            &format!("--{key}"),
            by_flag,
            "--print-config",
        ])));
        assert_eq!(flagged[key], by_flag, "--{key} beats the file");
        let variable = format!("PAPO_{}", key.to_uppercase().replace('-', "_"));
        let from_env = printed(&run(papo_server(home.path(), &[(variable.as_str(), by_flag)]).args([
            "--config",
            config,
            "--print-config",
        ])));
        assert_eq!(from_env[key], by_flag, "{variable} beats the file");
    }
}

#[test]
fn zero_or_absurd_admission_limits_are_refused_naming_the_setting() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("bad.toml");
    let bad = [
        ("login-deadline-secs", "<SECONDS>", ["0", "86400"]),
        ("unauthenticated-per-address", "<N>", ["0", "2000000"]),
        ("unauthenticated-percent", "<PERCENT>", ["0", "101"]),
        ("password-threads", "<N>", ["0", "100000"]),
    ];
    for (key, value_name, values) in bad {
        for value in values {
            let expected = format!("invalid value '{value}' for '--{key} {value_name}'");
            std::fs::write(&file, format!("{key} = {value}\n")).unwrap();
            let output = run(papo_server(home.path(), &[]).args([
                "--listen",
                "127.0.0.1:0",
                "--config",
                file.to_str().unwrap(),
            ]));
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{key} = {value}: {message}");
            assert!(
                message.starts_with(&format!("error: settings file {}: {expected}", file.display())),
                "{key} = {value} gave {message}"
            );
            let output = run(papo_server(home.path(), &[]).args([
                "--listen",
                "127.0.0.1:0",
                &format!("--{key}"),
                value,
            ]));
            assert_eq!(output.status.code(), Some(2), "--{key} {value}");
            assert!(stderr(&output).starts_with(&format!("error: {expected}")), "{}", stderr(&output));
        }
    }
}

/// A serving `papo-server` with `settings` in its settings file, and that file; it keeps its
/// limits (no `--no-rate-limits`).
fn server_with_settings(home: &Path, settings: &str) -> (process::ServerProcess, std::path::PathBuf) {
    let file = home.join("server.toml");
    std::fs::write(&file, settings).unwrap();
    let mut command = papo_server(home, &[]);
    command.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(home.join("data")).arg("--config").arg(&file);
    (process::start(command), file)
}

/// Rewrites the settings file, sends SIGHUP and returns the log line of the limits it applied.
fn reload_limits(server: &process::ServerProcess, file: &Path, settings: &str) -> String {
    std::fs::write(file, settings).unwrap();
    server.signal(libc::SIGHUP);
    log_line(server, "applied the new limits to what follows")
}

#[test]
fn sighup_turns_the_rate_limits_off_and_on_again() {
    let home = tempfile::tempdir().unwrap();
    let limited = "bcrypt-cost = 4\nregistrations-per-hour = 1\n";
    let (mut server, file) = server_with_settings(home.path(), limited);
    server.connect("sighup-test").register("ana", PASSWORD).unwrap();
    let refused = server.connect("sighup-test").register("bia", PASSWORD).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RateLimited), "{refused}");

    let applied = reload_limits(&server, &file, &format!("{limited}no-rate-limits = true\n"));
    assert!(applied.contains("no-rate-limits=true"), "{applied}");
    for name in ["bia", "cyd", "dan", "eve", "fay"] {
        server.connect("sighup-test").register(name, PASSWORD).unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    let applied = reload_limits(&server, &file, limited);
    assert!(applied.contains("no-rate-limits=false"), "{applied}");
    let refused = server.connect("sighup-test").register("gil", PASSWORD).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RateLimited), "limited again: {refused}");
    server.connect("sighup-test").login("fay", PASSWORD).expect("what was registered meanwhile stays");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
}

#[test]
fn sighup_changes_the_room_for_connections_not_logged_in_at_the_next_connection() {
    let home = tempfile::tempdir().unwrap();
    let settings = |per_address: u32| {
        format!("bcrypt-cost = 4\nmax-connections = 40\nunauthenticated-per-address = {per_address}\n")
    };
    let (mut server, file) = server_with_settings(home.path(), &settings(2));
    let full = |server: &process::ServerProcess| {
        Client::connect(&server.addr, &server.security, "sighup-test", Duration::from_secs(5))
            .map(|_| ())
            .unwrap_err()
    };
    let held = [server.connect("held"), server.connect("held")];
    assert_eq!(full(&server).code(), Some(ErrorCode::ServerFull), "a third from this address");

    let applied = reload_limits(&server, &file, &settings(3));
    assert!(applied.contains("unauthenticated-per-address=3"), "{applied}");
    let third = server.connect("held");
    assert_eq!(full(&server).code(), Some(ErrorCode::ServerFull), "a fourth from this address");
    drop((held, third));
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
}

#[test]
fn a_login_deadline_shortened_by_sighup_closes_a_connection_that_never_logs_in() {
    let home = tempfile::tempdir().unwrap();
    let (mut server, file) =
        server_with_settings(home.path(), "bcrypt-cost = 4\nlogin-deadline-secs = 600\n");
    let mut before = server.connect("before");
    // The server takes the deadline just after answering the handshake: a reply to a request
    // shows it has, so the reload cannot overtake it (under load it did).
    assert_eq!(before.request(Request::Ping).unwrap(), Reply::Pong);

    let applied = reload_limits(&server, &file, "bcrypt-cost = 4\nlogin-deadline-secs = 2\n");
    assert!(applied.contains("login-deadline-secs=2"), "{applied}");
    let mut after = server.connect("after");
    let started = Instant::now();
    // Pinging does not extend the deadline; the wait is bounded far above it.
    let closed = loop {
        match after.request(Request::Ping) {
            Ok(Reply::Pong) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(other) => panic!("still open after {:?}: {other:?}", started.elapsed()),
            Err(ClientError::Closed | ClientError::Frame(_)) => break started.elapsed(),
            Err(other) => panic!("{other}"),
        }
    };
    assert!(closed >= Duration::from_millis(1500), "not before the deadline: {closed:?}");
    assert_eq!(
        before.request(Request::Ping).unwrap(),
        Reply::Pong,
        "a connection made before the reload keeps the deadline it started with"
    );
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
}

#[test]
fn sighup_names_the_password_threads_as_needing_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let (mut server, file) = server_with_settings(home.path(), "bcrypt-cost = 4\npassword-threads = 2\n");
    std::fs::write(&file, "bcrypt-cost = 4\npassword-threads = 3\nunauthenticated-percent = 40\n").unwrap();
    server.signal(libc::SIGHUP);
    let applied = log_line(&server, "applied the new limits to what follows");
    assert!(applied.contains("unauthenticated-percent=40"), "{applied}");
    assert!(!applied.contains("password-threads"), "{applied}");
    assert!(log_line(&server, "only after a restart").contains("changed=password-threads"));
    server.connect("sighup-test").register("ana", PASSWORD).unwrap();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
}

#[test]
fn health_passes_against_a_serving_server_and_fails_without_one() {
    for extra in [&[][..], &["--plaintext"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let server = process::spawn_with_args(dir.path(), "info", extra);
        let home = tempfile::tempdir().unwrap();
        let output = run(papo_server(home.path(), &[])
            .args(["--listen", &server.addr, "--data-dir", dir.path().to_str().unwrap()])
            .args(extra)
            .arg("health"));
        assert!(stdout(&output).starts_with(&format!("healthy: {} answered the handshake in ", server.addr)));
        drop(server);

        let output = run(papo_server(home.path(), &[("PAPO_DATA_DIR", dir.path().to_str().unwrap())])
            .args(["--listen", "127.0.0.1:1"])
            .args(extra)
            .arg("health"));
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).starts_with("unhealthy: cannot reach the server at 127.0.0.1:1"),
            "{}",
            stderr(&output)
        );
    }
    let home = tempfile::tempdir().unwrap();
    let output = run(papo_server(home.path(), &[]).args(["--data-dir", "/nonexistent", "health"]));
    assert!(
        stderr(&output).contains("no certificate in /nonexistent/tls-cert.pem; has the server started"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn logs_are_plain_text_off_a_terminal_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    // process::start reads the fingerprint from `fingerprint=…`, which colour codes would break.
    let server = process::spawn(dir.path(), "info");
    assert!(matches!(server.security, papo_protocol::Security::Tls(_)), "the fingerprint line was not plain");
    drop(server);

    let home = tempfile::tempdir().unwrap();
    let mut command = papo_server(home.path(), &[("PAPO_LOG_FORMAT", "json")]);
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--bcrypt-cost",
        "4",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut fingerprint = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let object: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(object["timestamp"].is_string() && object["level"].is_string(), "{line}");
        fingerprint = fingerprint.or(object["fields"]["fingerprint"].as_str().map(str::to_owned));
        if object["fields"]["message"] == "listening" {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(fingerprint.expect("a fingerprint field").len(), 95, "32 bytes as AA:BB:…");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&run(papo_server(home.path(), &[]).args(["completions", shell])));
        assert!(script.contains("papo-server") && script.contains("print-config"), "{shell}");
    }
    let man = stdout(&run(papo_server(home.path(), &[]).arg("man")));
    assert!(man.contains(".TH papo-server 1"), "{man}");
    assert!(man.contains("print\\-config") && man.contains("health"), "every flag and subcommand");
}
