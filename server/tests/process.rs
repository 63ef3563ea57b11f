//! The real `papo-server` binary: it starts, serves, and stops cleanly on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use papo_protocol::{Client, Event};
use papo_server::testing::PASSWORD;

/// Starts the binary on an ephemeral port and returns it with the address it logged.
fn spawn(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_papo-server"))
        .args(["--listen", "127.0.0.1:0", "--bcrypt-cost", "4", "--data-dir"])
        .arg(data_dir)
        .env("PAPO_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn papo-server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("server exited before listening").expect("read log");
        if let Some(rest) = line.split("address=").nth(1) {
            if line.contains("listening") {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, address)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not exit after the signal");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill only sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[test]
fn sigterm_and_sigint_stop_cleanly_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = spawn(dir.path());
    let mut client = Client::connect(&address, "process-test", Duration::from_secs(5)).unwrap();
    client.register("ana", PASSWORD).unwrap();
    client.register("bia", PASSWORD).unwrap();
    client.login("ana", PASSWORD).unwrap();
    let (id, _) = client.send("bia", "survives restarts", 1).unwrap();

    signal(&server, libc::SIGTERM);
    client.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(client.next_event().unwrap(), Event::ShuttingDown);
    assert!(wait_exit(&mut server).success());

    let (mut server, address) = spawn(dir.path());
    let mut bia = Client::connect(&address, "process-test", Duration::from_secs(5)).unwrap();
    let session = bia.login("bia", PASSWORD).unwrap();
    assert_eq!(session.pending, 1);
    bia.stream().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match bia.next_event().unwrap() {
        Event::Message(message) => assert_eq!((message.id, message.body.as_str()), (id, "survives restarts")),
        other => panic!("expected the stored message, got {other:?}"),
    }
    signal(&server, libc::SIGINT);
    assert!(wait_exit(&mut server).success());
}
