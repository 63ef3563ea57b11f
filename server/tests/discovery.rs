//! LAN discovery between network namespaces: the real `papo-server` announces itself over
//! mDNS in one, the real `papo discover` finds it from the other (with the fingerprint the
//! server logged), and a server started with `--no-announce`, or on a machine with no network
//! but loopback, is not announced and serves all the same. Debian's avahi, an independent
//! mDNS implementation, sees papo-server's announcement and announces what papo discovers.

#[path = "support/avahi.rs"]
mod avahi;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/process.rs"]
mod process;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use avahi::Avahi;
use netns::{Lan, Namespace, FIRST_IP, SECOND_IP};
use process::ServerProcess;

/// Long enough for a loaded machine to answer; `papo discover` defaults to 2 s.
const BROWSE_SECONDS: &str = "4";

/// The `papo` client, built beside `papo-server` by `cargo test --workspace`.
fn papo_binary() -> PathBuf {
    let papo = PathBuf::from(env!("CARGO_BIN_EXE_papo-server")).with_file_name("papo");
    assert!(
        papo.exists(),
        "{} is missing: build the client too (`cargo build -p papo`; `cargo test --workspace` does)",
        papo.display()
    );
    papo
}

/// The real server inside `namespace`, on every address at an ephemeral port, with `args`.
fn serve_in(namespace: &Namespace, data_dir: &std::path::Path, args: &[&str]) -> ServerProcess {
    let mut command = namespace.command(env!("CARGO_BIN_EXE_papo-server"));
    command
        .args(["--listen", "0.0.0.0:0", "--log", "info", "--bcrypt-cost", "4"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir);
    process::start(command)
}

fn port(server: &ServerProcess) -> u16 {
    server.addr.rsplit(':').next().unwrap().parse().expect("the logged port")
}

/// `papo discover`'s lines inside `namespace`, each split on tabs.
fn discover(namespace: &Namespace) -> Vec<Vec<String>> {
    let output = namespace
        .command(papo_binary().to_str().unwrap())
        .args(["discover", "--seconds", BROWSE_SECONDS])
        .output()
        .expect("run papo discover");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(output.status.success(), "papo discover failed: {}", String::from_utf8_lossy(&output.stderr));
    stdout.lines().map(|line| line.split('\t').map(str::to_owned).collect()).collect()
}

/// Stops the server with SIGTERM and checks it exits 0 within 2 s, as CI's container check
/// asks of it with the announcement running.
fn stop_quickly(mut server: ServerProcess) {
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status}");
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
}

macro_rules! require_namespaces {
    () => {
        if let Some(reason) = netns::unavailable() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

#[test]
fn a_server_announced_in_one_namespace_is_found_from_another_with_its_fingerprint() {
    require_namespaces!();
    let lan = Lan::new();
    let dir = tempfile::tempdir().unwrap();
    // A dot and a space: DNS-SD escapes the one, and both must come back as they were.
    let server = serve_in(&lan.first, dir.path(), &["--name", "Lab 2.1"]);
    let fingerprint = server.fingerprint.expect("TLS is on by default").to_string();

    let found = discover(&lan.second);
    let expected =
        ["Lab 2.1".to_owned(), format!("{FIRST_IP}:{}", port(&server)), "tls".to_owned(), fingerprint];
    assert_eq!(found, [expected]);

    stop_quickly(server);
}

#[test]
fn no_announce_hides_a_server_and_plaintext_is_announced_as_such() {
    require_namespaces!();
    let lan = Lan::new();
    let (hidden_dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hidden = serve_in(&lan.first, hidden_dir.path(), &["--name", "hidden", "--no-announce"]);
    let plain = serve_in(&lan.first, plain_dir.path(), &["--name", "plain", "--plaintext"]);
    assert!(
        !hidden.log_before_listening.iter().any(|line| line.contains("announce")),
        "{:?}",
        hidden.log_before_listening
    );

    // The announcing server proves the browse worked, so the hidden one's absence means
    // something.
    let found = discover(&lan.second);
    let expected =
        ["plain".to_owned(), format!("{FIRST_IP}:{}", port(&plain)), "plaintext".to_owned(), "-".to_owned()];
    assert_eq!(found, [expected]);

    stop_quickly(hidden);
    stop_quickly(plain);
}

#[test]
fn without_a_network_besides_loopback_the_server_warns_and_serves() {
    require_namespaces!();
    let alone = Namespace::new("alone");
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(&alone, dir.path(), &["--name", "alone"]);
    let warning = server.log.iter().find(|line| line.contains("announce")).expect("a line about announcing");
    assert!(warning.contains("WARN") && warning.contains("not announced on the LAN"), "{warning}");

    // It serves: a client completes a handshake (what `papo-server health` checks).
    let health = alone
        .command(env!("CARGO_BIN_EXE_papo-server"))
        .args(["--listen", &format!("127.0.0.1:{}", port(&server))])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("health")
        .output()
        .expect("run papo-server health");
    assert!(health.status.success(), "health: {}", String::from_utf8_lossy(&health.stderr));

    stop_quickly(server);
}

#[test]
fn discover_finds_nothing_where_no_server_announces() {
    require_namespaces!();
    let lan = Lan::new();
    assert_eq!(discover(&lan.second), Vec::<Vec<String>>::new());
    // A namespace without any network: nothing to browse on, still not an error.
    let alone = Namespace::new("empty");
    let output =
        alone.command(papo_binary().to_str().unwrap()).args(["discover", "--seconds", "1"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn avahi_sees_the_announcement_and_papo_discover_sees_avahis() {
    require_namespaces!();
    let lan = Lan::new();
    let avahi = Avahi::start(&lan.second, "veth1", "avahi-peer");
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(&lan.first, dir.path(), &["--name", "interop"]);
    let fingerprint = server.fingerprint.unwrap();

    // `=;IFACE;IPv4;NAME;TYPE;DOMAIN;HOST;ADDRESS;PORT;"key=value" …`
    let seen = avahi.browse_until(&lan.second, Duration::from_secs(15), |fields| fields[3] == "interop");
    let entry = seen.iter().find(|fields| fields[3] == "interop").unwrap();
    assert_eq!(entry[7..9], [FIRST_IP.to_owned(), port(&server).to_string()], "{entry:?}");
    for pair in [
        "txtvers=1".to_owned(),
        format!("protovers={}", papo_protocol::PROTOCOL_VERSION),
        "tls=1".to_owned(),
        format!("fp={fingerprint}"),
    ] {
        assert!(entry[9].contains(&format!("\"{pair}\"")), "{pair} missing from {:?}", entry[9]);
    }

    // The other way: avahi announces a plaintext papo server, papo discover lists it.
    let protovers = format!("protovers={}", papo_protocol::PROTOCOL_VERSION);
    let _published = KillOnDrop(
        avahi
            .command(&lan.second, "avahi-publish")
            .args(["--service", "avahi peer", "_papo._tcp", "7001", "txtvers=1", &protovers, "tls=0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run avahi-publish (apt-get install avahi-utils)"),
    );
    let found = discover(&lan.first);
    let expected =
        ["avahi peer".to_owned(), format!("{SECOND_IP}:7001"), "plaintext".to_owned(), "-".to_owned()];
    assert!(found.contains(&expected.to_vec()), "{found:?}");

    stop_quickly(server);
}

/// `tmux -L socket args…`; panics with tmux's words if it fails.
fn tmux(socket: &str, args: &[&str]) -> String {
    let output = Command::new("tmux").arg("-L").arg(socket).args(args).output().expect("run tmux");
    assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until the tmux session's screen shows every one of `texts`.
fn wait_for_screen(socket: &str, texts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let screen = tmux(socket, &["capture-pane", "-p", "-t", "papo"]);
        if texts.iter().all(|text| screen.contains(text)) {
            return screen;
        }
        assert!(Instant::now() < deadline, "{texts:?} never appeared:\n{screen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn papo_with_no_server_offers_the_announced_ones_and_connects_to_the_pick() {
    require_namespaces!();
    let lan = Lan::new();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(&lan.first, dir.path(), &["--name", "lab-pc"]);
    let fingerprint = server.fingerprint.unwrap().to_string();

    // A fresh home: no server remembered. tmux's own server runs in the second namespace,
    // so papo browses from there.
    let home = tempfile::tempdir().unwrap();
    let socket = format!("papo-discovery-{}", std::process::id());
    let command = format!(
        "env HOME={home} XDG_CONFIG_HOME={home}/config XDG_STATE_HOME={home}/state XDG_DATA_HOME={home}/data \
         TERM=xterm-256color LANG=C.UTF-8 {papo}; echo \"papo exited with $?\"; sleep 60",
        home = home.path().display(),
        papo = papo_binary().display(),
    );
    let tmux_server = lan
        .second
        .command("tmux")
        .args(["-L", &socket, "new-session", "-d", "-s", "papo", "-x", "100", "-y", "24", &command])
        .status()
        .expect("run tmux (apt-get install tmux)");
    assert!(tmux_server.success());
    struct KillTmux<'a>(&'a str);
    impl Drop for KillTmux<'_> {
        fn drop(&mut self) {
            let _ = Command::new("tmux").args(["-L", self.0, "kill-server"]).status();
        }
    }
    let _tmux = KillTmux(&socket);

    let address = format!("{FIRST_IP}:{}", port(&server));
    let screen =
        wait_for_screen(&socket, &["Papo servers on this network", "lab-pc", &address, "not yet trusted"]);
    assert!(screen.replace('\n', "").contains(&fingerprint[..47]), "the announced fingerprint:\n{screen}");

    // The pick only chooses the address: the certificate still goes through the first-contact
    // prompt, which shows what the TLS handshake presented.
    tmux(&socket, &["send-keys", "-t", "papo", "Enter"]);
    let (first, second) = fingerprint.split_at(47);
    wait_for_screen(&socket, &["Papo · new server", first, &second[1..]]);
    tmux(&socket, &["send-keys", "-t", "papo", "C-c"]);
    wait_for_screen(&socket, &["papo exited with"]);

    stop_quickly(server);
}

#[test]
fn a_name_that_cannot_be_announced_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (name, why) in
        [("x".repeat(64), "a name is 1 to 63 bytes"), ("lab\u{7}".to_owned(), "no control characters")]
    {
        let (status, log) = process::fails_to_start(dir.path(), &["--name", &name]);
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.contains(why), "{log}");
    }
}
