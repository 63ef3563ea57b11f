//! The store's faults, against the real `papo-server` binary: a damaged log or database is
//! refused loudly by name, a full disk refuses new messages (and only those) until space is
//! freed, startup failures name their path, the data directory is private, and a data
//! directory deleted under a running server stops it before it acknowledges anything more.

#[path = "support/process.rs"]
mod process;
#[path = "support/tmpfs.rs"]
mod tmpfs;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use papo_protocol::{Client, ClientError, ErrorCode, Reply, Request};
use papo_server::testing::PASSWORD;

use process::ServerProcess;
use tmpfs::Tmpfs;

const QUIET: &str = "warn,papo_server::server=info";

fn register_pair(server: &ServerProcess) -> Client {
    let mut client = server.connect("storage-test");
    client.register("ana", PASSWORD).unwrap();
    client.register("bob", PASSWORD).unwrap();
    client.login("ana", PASSWORD).unwrap();
    client
}

/// Sends `count` messages from ana to bob, pipelined, with client ids from `first`.
fn send_many(client: &mut Client, first: u64, count: u64) -> BTreeMap<u64, u64> {
    let requests: Vec<_> = (first..first + count)
        .map(|cmid| {
            let send =
                Request::Send { to: "bob".into(), body: format!("message {cmid}"), client_msg_id: cmid };
            (cmid, client.send_request(send).unwrap())
        })
        .collect();
    requests
        .into_iter()
        .map(|(cmid, request)| match client.wait_reply(request).unwrap() {
            Reply::Sent { id, .. } => (cmid, id),
            other => panic!("unexpected reply {other:?}"),
        })
        .collect()
}

/// Every message bob has from ana, as (id, body), oldest first.
fn bobs_history(server: &ServerProcess) -> Vec<(u64, String)> {
    let mut bob = server.connect("storage-test");
    bob.login("bob", PASSWORD).unwrap();
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = bob.history("ana", before, 200).unwrap();
        all.extend(page.messages.iter().map(|m| (m.id, m.body.clone())));
        before = page.messages.last().map(|m| m.id);
        if !page.more {
            all.reverse();
            return all;
        }
    }
}

/// The newest log segment in a data directory.
fn newest_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    segments.sort();
    segments.pop().expect("a log segment")
}

/// Bytes of a preallocated segment up to its last nonzero byte: what its records occupy.
fn written_len(segment: &Path) -> usize {
    let bytes = fs::read(segment).unwrap();
    bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)
}

/// An offset in the middle of `segment`'s first record that another record follows: damage
/// there is damage, whereas the last record's could be a write cut off by the crash (and
/// with groups of writes as large as the load makes them, the file's middle may well fall in
/// the last record).
fn inside_a_record_followed_by_another(segment: &Path) -> usize {
    const SEGMENT_HEADER: usize = 32;
    const RECORD_HEADER: usize = 24;
    let bytes = fs::read(segment).unwrap();
    let record = &bytes[SEGMENT_HEADER..];
    assert_eq!(&record[..4], b"PREC", "a record after the segment header");
    let payload = u32::from_le_bytes(record[4..8].try_into().unwrap()) as usize;
    let next = SEGMENT_HEADER + RECORD_HEADER + payload;
    assert_eq!(&bytes[next..next + 4], b"PREC", "another record follows the first");
    SEGMENT_HEADER + RECORD_HEADER + payload / 2
}

/// A server killed with SIGKILL after 300 acknowledged messages, its log not yet retired.
fn crashed_with_log(dir: &Path) -> BTreeMap<u64, u64> {
    let server = process::spawn(dir, QUIET);
    let mut client = register_pair(&server);
    let acked = send_many(&mut client, 1, 300);
    server.signal(libc::SIGKILL);
    drop(server);
    acked
}

#[test]
fn a_flipped_byte_in_the_log_refuses_start_naming_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let acked = crashed_with_log(dir.path());
    let segment = newest_segment(dir.path());
    let mut bytes = fs::read(&segment).unwrap();
    let middle = inside_a_record_followed_by_another(&segment);
    bytes[middle] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();

    let (status, log) = process::fails_to_start(dir.path(), &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("write-ahead log is damaged"), "{log}");
    assert!(log.contains(&segment.display().to_string()), "the file is named: {log}");
    assert!(log.contains("offset"), "{log}");
    assert!(log.contains("Nothing was changed"), "{log}");

    // Refusing changed nothing: with the byte restored, everything is there.
    bytes[middle] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let server = process::spawn(dir.path(), QUIET);
    let stored: Vec<u64> = bobs_history(&server).iter().map(|(id, _)| *id).collect();
    assert_eq!(stored, acked.values().copied().collect::<Vec<_>>());
}

#[test]
fn a_log_segment_cut_short_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    crashed_with_log(dir.path());
    let segment = newest_segment(dir.path());
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(written_len(&segment) as u64 / 2).unwrap();
    let (status, log) = process::fails_to_start(dir.path(), &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("cut short") && log.contains(&segment.display().to_string()), "{log}");
}

#[test]
fn an_emptied_or_damaged_database_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut server = process::spawn(dir.path(), QUIET);
        let mut client = register_pair(&server);
        send_many(&mut client, 1, 50);
        server.signal(libc::SIGTERM);
        assert!(server.wait_exit().success());
    }
    let db = dir.path().join("db");
    let original = fs::read(&db).unwrap();

    // What a power cut on a disk that dropped sled's unsynced writes used to leave.
    fs::write(&db, b"").unwrap();
    let (status, log) = process::fails_to_start(dir.path(), &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("has lost data") && log.contains(&dir.path().display().to_string()), "{log}");

    // Garbage over the records: refused, not a panic's backtrace and exit 101.
    let mut damaged = original.clone();
    let len = damaged.len();
    damaged[len / 4..len * 3 / 4].fill(0xa5);
    fs::write(&db, &damaged).unwrap();
    let (status, log) = process::fails_to_start(dir.path(), &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("damaged") || log.contains("has lost data"), "{log}");

    fs::write(&db, &original).unwrap();
    let server = process::spawn(dir.path(), QUIET);
    assert_eq!(bobs_history(&server).len(), 50);
}

#[test]
fn a_second_server_on_the_same_directory_is_told_who_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = process::spawn(dir.path(), QUIET);
    let (status, log) = process::fails_to_start(dir.path(), &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    let expected =
        format!("another papo-server is using {} (pid {})", dir.path().display(), server.child.id());
    assert!(log.contains(&expected), "{log}");
}

#[test]
fn startup_failures_name_the_path_and_leave_nothing_behind() {
    // A full disk.
    let disk = Tmpfs::mount(1 << 20, "");
    let ballast = disk.path().join("ballast");
    let _ = fs::write(&ballast, vec![1u8; 2 << 20]);
    let data = disk.path().join("papo");
    let (status, log) = process::fails_to_start(&data, &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("No space left on device") && log.contains(&data.display().to_string()), "{log}");
    let unfinished = data.join("wal/spare.unfinished");
    assert!(!unfinished.exists(), "a half-filled spare segment was left behind");

    // A read-only mount.
    let disk = Tmpfs::mount(8 << 20, "");
    disk.make_read_only();
    let data = disk.path().join("papo");
    let (status, log) = process::fails_to_start(&data, &[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Read-only file system") && log.contains(&data.display().to_string()), "{log}");

    // A directory another user owns, private to them.
    let theirs = tempfile::tempdir().unwrap();
    fs::set_permissions(theirs.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let (status, log) = process::fails_to_start_with(theirs.path(), &[], |command| {
        command.uid(65534).gid(65534);
    });
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Permission denied") && log.contains(&theirs.path().display().to_string()), "{log}");
}

#[test]
fn the_data_directory_and_everything_in_it_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("papo");
    {
        let mut server = process::spawn(&dir, QUIET);
        let mut client = register_pair(&server);
        send_many(&mut client, 1, 10);
        server.signal(libc::SIGTERM);
        assert!(server.wait_exit().success());
    }
    let mut checked = 0;
    let mut pending = vec![dir.clone()];
    while let Some(path) = pending.pop() {
        let meta = fs::metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            pending.extend(fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 8, "the database, log, manifest, lock and TLS files: {checked}");

    // An existing directory open to others is served, with a warning that says how to fix it.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let server = process::spawn_with_args(&dir, "warn,papo_server::server=info", &[]);
    let warned = server.log_before_listening.iter().any(|line| line.contains("open to other users"));
    assert!(warned, "{:#?}", server.log_before_listening);
    assert_eq!(fs::metadata(&dir).unwrap().uid(), 0);
}

#[test]
fn deleting_the_data_directory_under_a_running_server_stops_it_unacknowledged() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("papo");
    let mut server = process::spawn(&dir, QUIET);
    let mut client = register_pair(&server);
    send_many(&mut client, 1, 20);
    fs::remove_dir_all(&dir).unwrap();
    let request = client.send_request(Request::Send {
        to: "bob".into(),
        body: "into the void".into(),
        client_msg_id: 100,
    });
    let answer = request.and_then(|request| client.wait_reply(request));
    assert!(
        !matches!(answer, Ok(Reply::Sent { .. })),
        "a message was acknowledged after its data directory was deleted: {answer:?}"
    );
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(1));
    let log: Vec<String> = server.log.try_iter().collect();
    assert!(log.iter().any(|line| line.contains("was deleted while the server ran")), "{log:#?}");
}

/// Sends one message and returns whether it was acknowledged, or the error code.
fn send_one(client: &mut Client, cmid: u64) -> Result<u64, ErrorCode> {
    match client.send("bob", &format!("message {cmid}"), cmid) {
        Ok((id, _)) => Ok(id),
        Err(ClientError::Rejected(e)) => Err(e.code),
        Err(other) => panic!("message {cmid}: {other}"),
    }
}

#[test]
fn a_full_disk_refuses_new_messages_then_recovers_by_itself_exactly_once() {
    let disk = Tmpfs::mount(24 << 20, "");
    let data = disk.path().join("papo");
    let args = ["--bcrypt-cost", "4", "--wal-segment-kib", "64", "--min-free-mib", "2"];
    let mut server = process::spawn_with_args(&data, QUIET, &args);
    let mut client = register_pair(&server);
    // Leave about 4 MiB: a few thousand messages, then the 2 MiB reserve.
    let free = free_bytes(disk.path());
    let ballast = disk.path().join("ballast");
    fs::write(&ballast, vec![7u8; usize::try_from(free - (4 << 20)).unwrap()]).unwrap();

    let mut acked = BTreeMap::new();
    let mut refused = Vec::new();
    let started = Instant::now();
    let mut cmid = 1;
    while refused.len() < 20 {
        assert!(cmid < 200_000 && started.elapsed() < Duration::from_secs(120), "the disk never filled");
        match send_one(&mut client, cmid) {
            Ok(id) => {
                assert!(refused.is_empty(), "message {cmid} stored after a refusal: the reserve flapped");
                acked.insert(cmid, id);
            }
            Err(code) => {
                assert_eq!(code, ErrorCode::StorageFull, "message {cmid}");
                refused.push(cmid);
            }
        }
        cmid += 1;
    }
    // A refused message retried with its client id is refused again, never stored.
    for _ in 0..3 {
        assert_eq!(send_one(&mut client, refused[0]), Err(ErrorCode::StorageFull));
    }
    // Reading, logging in and receipts go on; new accounts wait.
    let mut bob = server.connect("storage-test");
    let session = bob.login("bob", PASSWORD).unwrap();
    assert_eq!(session.pending, acked.len() as u64);
    let newest = *acked.values().last().unwrap();
    let read = bob.request(Request::MarkRead { with: "ana".into(), up_to: newest }).unwrap();
    assert_eq!(read, Reply::Done, "a receipt is stored from the reserve");
    assert_eq!(bob.history("ana", None, 1).unwrap().messages[0].id, newest);
    match server.connect("storage-test").register("cris", PASSWORD) {
        Err(ClientError::Rejected(e)) => assert_eq!(e.code, ErrorCode::StorageFull),
        other => panic!("registration on a full disk: {other:?}"),
    }
    let told: Vec<String> = server.log.try_iter().collect();
    assert!(told.iter().any(|line| line.contains("disk is full")), "{told:#?}");

    // Room again: the same server stores the refused messages, each once, with no restart.
    fs::remove_file(&ballast).unwrap();
    for &cmid in &refused {
        acked.insert(cmid, send_one(&mut client, cmid).expect("stored once there is room"));
    }
    assert_eq!(send_one(&mut client, refused[0]), Ok(acked[&refused[0]]), "a resend, not a new message");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());

    let server = process::spawn_with_args(&data, QUIET, &args);
    let stored = bobs_history(&server);
    let by_body: BTreeMap<&str, Vec<u64>> = stored.iter().fold(BTreeMap::new(), |mut all, (id, body)| {
        all.entry(body.as_str()).or_default().push(*id);
        all
    });
    assert_eq!(stored.len(), acked.len(), "exactly the acknowledged messages are stored");
    for (cmid, id) in &acked {
        assert_eq!(by_body[format!("message {cmid}").as_str()], [*id], "message {cmid}");
    }
    eprintln!(
        "full disk: {} acknowledged before the disk filled, {} refused and stored once after space was freed",
        acked.len() - refused.len(),
        refused.len()
    );
}

fn free_bytes(path: &Path) -> u64 {
    let output = std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(path).output().unwrap();
    String::from_utf8(output.stdout).unwrap().lines().nth(1).unwrap().trim().parse().unwrap()
}

/// Runs `papo-server --data-dir DIR ARGS…` to its end: exit code, stdout, stderr.
fn maintenance(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_papo-server"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run papo-server");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8 output");
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[test]
fn export_while_running_and_stopped_imports_into_a_new_directory_and_check_finds_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = process::spawn(dir.path(), QUIET);
    let mut client = register_pair(&server);
    let acked = send_many(&mut client, 1, 40);
    let (code, online, told) = maintenance(dir.path(), &["export", "-"]);
    assert_eq!(code, Some(0), "{told}");
    assert!(told.contains("exported 2 users and 40 messages, from the running server"), "{told}");
    let (code, _, told) = maintenance(dir.path(), &["check"]);
    assert_eq!(code, Some(1), "a running store is not checked");
    assert!(told.contains("another papo-server is using"), "{told}");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());

    let (code, report, _) = maintenance(dir.path(), &["check"]);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("2 accounts, 40 messages") && report.contains("no damage found"), "{report}");
    let (code, offline, told) = maintenance(dir.path(), &["export"]);
    assert_eq!(code, Some(0), "{told}");
    // Stopping ended ana's session, which recorded when she was last seen: that field is the
    // one difference, and only ana's line gains it.
    let lines = |text: &str| -> Vec<serde_json::Value> {
        text.lines().skip(1).map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    };
    let (mut online_lines, mut offline_lines) = (lines(&online), lines(&offline));
    let seen = |lines: &mut Vec<serde_json::Value>| -> Vec<String> {
        let mut seen = Vec::new();
        for line in lines.iter_mut() {
            if let Some(fields) = line.as_object_mut() {
                if fields.remove("last_seen").is_some() {
                    seen.push(fields["name"].as_str().unwrap_or_default().to_owned());
                }
            }
        }
        seen
    };
    assert_eq!((seen(&mut online_lines), seen(&mut offline_lines)), (vec![], vec!["ana".to_owned()]));
    assert_eq!(offline_lines, online_lines, "the same store exports the same lines");

    let copy_parent = tempfile::tempdir().unwrap();
    let copy = copy_parent.path().join("copy");
    let file = copy_parent.path().join("backup.jsonl");
    fs::write(&file, &online).unwrap();
    let file_arg = file.display().to_string();
    let (code, _, told) = maintenance(&copy, &["import", &file_arg]);
    assert_eq!(code, Some(0), "{told}");
    assert!(told.contains("imported 2 users, 40 messages"), "{told}");
    let (code, _, told) = maintenance(&copy, &["import", &file_arg]);
    assert_eq!(code, Some(1));
    assert!(told.contains("already holds a store"), "{told}");
    let server = process::spawn(&copy, QUIET);
    let stored: Vec<u64> = bobs_history(&server).iter().map(|(id, _)| *id).collect();
    assert_eq!(stored, acked.values().copied().collect::<Vec<_>>(), "the import serves the same messages");
    drop(server);

    // Damage written behind the store's back is listed, by record.
    let db_key_damage = tempfile::tempdir().unwrap();
    let crashed = db_key_damage.path();
    crashed_with_log(crashed);
    let segment = newest_segment(crashed);
    let mut bytes = fs::read(&segment).unwrap();
    let middle = inside_a_record_followed_by_another(&segment);
    bytes[middle] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let (code, report, _) = maintenance(crashed, &["check"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("damaged: the write-ahead log is damaged"), "{report}");
}
