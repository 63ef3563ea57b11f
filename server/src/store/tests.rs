//! The store's API against real sled files in temporary directories.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::*;

pub(super) fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub(super) fn append(
    store: &Store,
    from: &Username,
    to: &Username,
    body: &str,
    client_msg_id: u64,
) -> Appended {
    append_at(store, from, to, body, client_msg_id, crate::clock::now_millis())
}

pub(super) fn append_at(
    store: &Store,
    from: &Username,
    to: &Username,
    body: &str,
    client_msg_id: u64,
    now: i64,
) -> Appended {
    let appends = Appends::new();
    store.append(from, to, body, client_msg_id, now, &appends).unwrap();
    appends.next().unwrap()
}

fn stored(appended: Appended) -> ChatMessage {
    match appended {
        Appended::New(Posted::Direct(message)) => message,
        other => panic!("expected a new message, got {other:?}"),
    }
}

#[test]
fn append_dedups_resends_and_counts_unread() {
    let (_dir, store) = open();
    let (ana, bob) = (name("ana"), name("bob"));
    let first = stored(append(&store, &ana, &bob, "oi", 1));
    assert_eq!(append(&store, &ana, &bob, "oi", 1), Appended::Resent(Posted::Direct(first.clone())));
    let second = stored(append(&store, &ana, &bob, "tudo bem?", 2));
    assert_eq!(second.id, first.id + 1);
    assert_eq!(store.summary(&bob, &ana).unwrap().unread, 2);
    assert_eq!(store.summary(&ana, &bob).unwrap().unread, 0);
    assert_eq!(store.pending_count(&bob).unwrap(), 2);
}

#[test]
fn a_client_id_reused_for_another_message_is_refused_and_stores_nothing() {
    let (_dir, store) = open();
    let (ana, bob, eve) = (name("ana"), name("bob"), name("eve"));
    let first = stored(append(&store, &ana, &bob, "oi", 1));
    assert_eq!(append(&store, &ana, &eve, "oi", 1), Appended::Reused { original: first.id });
    assert_eq!(append(&store, &ana, &bob, "other text", 1), Appended::Reused { original: first.id });
    assert_eq!(store.last_message_id().unwrap(), first.id);
    assert_eq!(store.history(&ana, &eve, None, 10).unwrap().messages, []);
}

#[test]
fn pipelined_appends_in_one_group_see_each_other() {
    let (_dir, store) = open();
    let (ana, bob) = (name("ana"), name("bob"));
    let appends = Appends::new();
    for i in 0..50 {
        // Every message twice: the resend must find the first even in the same group.
        store.append(&ana, &bob, &format!("m{i}"), i, 0, &appends).unwrap();
        store.append(&ana, &bob, &format!("m{i}"), i, 0, &appends).unwrap();
    }
    let answers: Vec<_> = (0..100).map(|_| appends.next().unwrap()).collect();
    assert_eq!(answers.iter().filter(|a| matches!(a, Appended::Resent(_))).count(), 50);
    assert_eq!(store.summary(&bob, &ana).unwrap().unread, 50);
    assert_eq!(store.last_message_id().unwrap(), 50);
}

#[test]
fn history_pages_newest_first() {
    let (_dir, store) = open();
    let (ana, bob, eve) = (name("ana"), name("bob"), name("eve"));
    for i in 0..25 {
        append(&store, &ana, &bob, &format!("m{i}"), i);
        append(&store, &eve, &ana, "noise", i);
    }
    let first = store.history(&bob, &ana, None, 10).unwrap();
    assert!(first.more);
    assert_eq!(first.messages[0].body, "m24");
    let last_id = first.messages.last().unwrap().id;
    let second = store.history(&bob, &ana, Some(last_id), 10).unwrap();
    assert_eq!(second.messages[0].body, "m14");
    let third = store.history(&bob, &ana, Some(second.messages[9].id), 10).unwrap();
    assert_eq!(third.messages.len(), 5);
    assert!(!third.more);
}

#[test]
fn delivered_and_read_move_watermarks() {
    let (_dir, store) = open();
    let (ana, bob) = (name("ana"), name("bob"));
    let ids: Vec<_> = (0..3).map(|i| stored(append(&store, &ana, &bob, "x", i)).id).collect();
    let eve = name("eve");
    let from_eve = stored(append(&store, &eve, &bob, "y", 0)).id;
    // The sender cannot confirm their own messages for the recipient.
    assert_eq!(store.mark_delivered(&ana, &bob, ids[2]).unwrap(), None);
    assert_eq!(store.pending_count(&bob).unwrap(), 4);
    assert_eq!(store.mark_delivered(&bob, &ana, ids[1]).unwrap(), Some(ids[1]));
    assert_eq!(store.mark_delivered(&bob, &ana, ids[0]).unwrap(), None, "watermarks never go back");
    assert_eq!(store.pending_count(&bob).unwrap(), 2);
    let pending: Vec<_> = store.pending_after(&bob, 0, 10).unwrap().iter().map(Posted::id).collect();
    assert_eq!(pending, [ids[2], from_eve]);
    assert_eq!(store.pending_after(&bob, ids[2], 10).unwrap().len(), 1);
    assert_eq!(store.mark_read(&bob, &ana, ids[1]).unwrap(), Some(ids[1]));
    assert_eq!(store.summary(&bob, &ana).unwrap().unread, 1);
    assert_eq!(store.mark_read(&bob, &ana, ids[0]).unwrap(), None);
    let page = store.history(&ana, &bob, None, 10).unwrap();
    assert_eq!(page.peer_read_up_to, ids[1]);
}

#[test]
fn unread_counts_match_a_recount_for_any_watermark() {
    let (_dir, store) = open();
    let (ana, bob) = (name("ana"), name("bob"));
    let mut rng = fastrand::Rng::with_seed(7);
    let mut sent = Vec::new();
    for i in 0..300 {
        let (from, to) = if rng.bool() { (&ana, &bob) } else { (&bob, &ana) };
        sent.push((stored(append(&store, from, to, "x", i)).id, from.clone()));
        if rng.u8(..) < 40 {
            // Up to any id: one of ana's own, one of bob's, or between conversations' ids.
            let up_to = rng.u64(0..=sent.len() as u64 + 3);
            store.mark_read(&bob, &ana, up_to).unwrap();
            let read_up_to = store.summary(&bob, &ana).unwrap().read_up_to;
            let recount = sent.iter().filter(|(id, from)| *from == ana && *id > read_up_to).count();
            assert_eq!(store.summary(&bob, &ana).unwrap().unread, recount as u64, "after {i} messages");
        }
    }
}

#[test]
fn mark_read_counts_a_message_staged_in_the_same_group() {
    let (_dir, store) = open();
    let (ana, bob) = (name("ana"), name("bob"));
    let first = stored(append(&store, &ana, &bob, "one", 1));
    // Both reach the committer before it syncs: the read moves over the first message while
    // a second one is staged in the same group, and only the first may count as read.
    let appends = Appends::new();
    let staged = store.committer.submit(Growth::Grows, {
        let (ana, bob) = (ana.clone(), bob.clone());
        move |staged: &mut commit::Staged<'_>| {
            let second = writes::append(
                staged,
                writes::NewMessage {
                    from: ana.clone(),
                    to: bob.clone(),
                    body: "two".into(),
                    client_msg_id: 2,
                    now: 0,
                },
            )?;
            let moved = writes::mark_read(staged, &bob, &ana, first.id)?;
            Ok((second, moved))
        }
    });
    let (second, moved) = commit::wait(&staged.unwrap()).unwrap();
    assert!(matches!(second, Appended::New(_)));
    assert_eq!(moved, Some(first.id));
    assert_eq!(store.summary(&bob, &ana).unwrap().unread, 1, "the staged second message is unread");
    store.append(&ana, &bob, "three", 3, 0, &appends).unwrap();
    appends.next().unwrap();
    assert_eq!(store.summary(&bob, &ana).unwrap().unread, 2);
}

/// Creates `user` with the password hash `password_hash`, and returns the hash.
fn with_account<'a>(store: &Store, user: &Username, password_hash: &'a str) -> &'a str {
    let record =
        UserRecord { password_hash: password_hash.into(), created_at: 0, status: AccountStatus::Active };
    assert!(store.create_user(user, &record).unwrap());
    password_hash
}

#[test]
fn a_single_use_token_taken_at_once_by_many_goes_to_one() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    let record = TokenRecord { user: name("ana"), expires_at: i64::MAX };
    let hash = with_account(&store, &name("ana"), "$2b$04$ana");
    store.save_token(b"hash", &record, hash).unwrap().unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                store.take_token(b"hash").unwrap()
            })
        })
        .collect();
    let got: Vec<_> = takers.into_iter().filter_map(|taker| taker.join().unwrap()).collect();
    assert_eq!(got, [(record, store.user(&name("ana")).unwrap().unwrap())]);
    assert_eq!(store.token(b"hash").unwrap(), None);
}

#[test]
fn a_token_is_not_saved_once_the_password_changed_since_it_was_authenticated() {
    // The race of a resume with a password change, step by step as the committer orders
    // them: the resume takes its token, the change revokes every other token, then the
    // resume tries to save its new one.
    let (_dir, store) = open();
    let ana = name("ana");
    let old_hash = with_account(&store, &ana, "$2b$04$old");
    let record = TokenRecord { user: ana.clone(), expires_at: i64::MAX };
    store.save_token(b"first", &record, old_hash).unwrap().unwrap();
    let (taken, account) = store.take_token(b"first").unwrap().unwrap();
    assert_eq!(store.change_password(&ana, "$2b$04$new", None).unwrap(), Some(0));
    let refused = store.save_token(b"second", &taken, &account.password_hash).unwrap();
    assert_eq!(refused, Err(AccountChanged::PasswordChanged));
    assert_eq!(store.token(b"second").unwrap(), None, "a refused token is not stored");
    // Authenticated against the new password, it is saved.
    store.save_token(b"third", &taken, "$2b$04$new").unwrap().unwrap();
    assert_eq!(store.token(b"third").unwrap(), Some(taken));
}

#[test]
fn a_token_of_a_missing_account_is_not_saved() {
    let (_dir, store) = open();
    let record = TokenRecord { user: name("ghost"), expires_at: i64::MAX };
    assert_eq!(store.save_token(b"t", &record, "$2b$04$x").unwrap(), Err(AccountChanged::Gone));
    assert_eq!(store.token(b"t").unwrap(), None);
}

#[test]
fn pruning_forgets_expired_tokens_and_old_resend_entries_only() {
    let (_dir, store) = open();
    let (ana, bob) = (name("ana"), name("bob"));
    let hash = with_account(&store, &ana, "$2b$04$ana");
    store.save_token(b"old", &TokenRecord { user: ana.clone(), expires_at: 10 }, hash).unwrap().unwrap();
    store
        .save_token(b"new", &TokenRecord { user: ana.clone(), expires_at: i64::MAX }, hash)
        .unwrap()
        .unwrap();
    let generation = keys::DEDUP_GENERATION_MS;
    let old = stored(append_at(&store, &ana, &bob, "old", 1, generation + 1));
    stored(append_at(&store, &ana, &bob, "recent", 2, generation * 2));

    // One generation later, the first is still recognised.
    let within = generation * 2 + 1;
    assert_eq!(store.prune(within).unwrap(), Pruned { tokens: 1, resends: 0, group_lines: 0 });
    assert_eq!(append_at(&store, &ana, &bob, "old", 1, within), Appended::Resent(Posted::Direct(old)));
    // Two generations later it is forgotten; the message itself stays.
    assert_eq!(store.prune(generation * 3).unwrap(), Pruned { tokens: 0, resends: 1, group_lines: 0 });
    assert_eq!(store.token(b"new").unwrap().map(|t| t.user), Some(ana.clone()));
    assert_eq!(store.history(&ana, &bob, None, 5).unwrap().messages.len(), 2);
}

#[test]
fn a_full_disk_refuses_growth_with_storage_full_and_keeps_maintaining() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bob) = (name("ana"), name("bob"));
    let first = {
        let store = Store::open(dir.path()).unwrap();
        stored(append(&store, &ana, &bob, "before", 1))
    };
    let full = StoreOptions { reserve_bytes: u64::MAX, ..StoreOptions::default() };
    let store = Store::open_with(dir.path(), full).unwrap();
    let appends = Appends::new();
    store.append(&ana, &bob, "refused", 2, 0, &appends).unwrap();
    assert!(matches!(appends.next(), Err(StoreError::StorageFull { .. })));
    let user = UserRecord { password_hash: "h".into(), created_at: 0, status: AccountStatus::Active };
    assert!(matches!(store.create_user(&bob, &user), Err(StoreError::StorageFull { .. })));
    assert_eq!(store.mark_read(&bob, &ana, first.id).unwrap(), Some(first.id), "receipts still work");
    assert_eq!(store.history(&bob, &ana, None, 5).unwrap().messages, std::slice::from_ref(&first));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_message_id().unwrap(), first.id, "nothing refused was stored");
    assert_eq!(stored(append(&store, &ana, &bob, "refused", 2)).id, first.id + 1, "and its resend is new");
}

#[test]
fn a_clean_stop_after_many_segments_leaves_no_log_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bob) = (name("ana"), name("bob"));
    let small_segments = StoreOptions { wal_segment: 64 * 1024, ..StoreOptions::default() };
    let segments = |dir: &Path| {
        fs::read_dir(dir.join("wal"))
            .unwrap()
            .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|ext| ext == "log"))
            .count()
    };
    {
        let store = Store::open_with(dir.path(), small_segments).unwrap();
        let appends = Appends::new();
        for i in 0..2_000 {
            store.append(&ana, &bob, &format!("message {i} {}", "x".repeat(100)), i, 0, &appends).unwrap();
        }
        (0..2_000).for_each(|_| drop(appends.next().unwrap()));
    }
    assert_eq!(segments(dir.path()), 0, "a clean stop checkpoints and retires the whole log");
    let store = Store::open_with(dir.path(), small_segments).unwrap();
    let page = store.history(&bob, &ana, None, 1).unwrap();
    assert_eq!(page.messages[0].body, format!("message 1999 {}", "x".repeat(100)));
    assert_eq!(store.last_message_id().unwrap(), 2_000);
}

#[test]
fn a_conversation_going_back_and_forth_never_waits_for_the_commit_gap() {
    let gap = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(dir.path(), StoreOptions { commit_gap: gap, ..StoreOptions::default() }).unwrap();
    let (ana, bob) = (name("ana"), name("bob"));
    let started = std::time::Instant::now();
    // Each write is sent once the one before is durable, as at window 1: alone every time,
    // with nothing queued behind it, so none of them waits.
    for i in 1..=5 {
        append(&store, &ana, &bob, &format!("message {i}"), i);
    }
    assert!(started.elapsed() < gap, "five lone writes took {:?}", started.elapsed());
}

#[test]
fn pipelined_writes_share_few_syncs() {
    let gap = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(dir.path(), StoreOptions { commit_gap: gap, ..StoreOptions::default() }).unwrap();
    let (ana, bob) = (name("ana"), name("bob"));
    let started = std::time::Instant::now();
    let appends = Appends::new();
    for i in 1..=10 {
        store.append(&ana, &bob, &format!("message {i}"), i, 1_000, &appends).unwrap();
    }
    (1..=10).for_each(|_| drop(appends.next().unwrap()));
    // At most the first write goes alone; the rest queued behind it wait out one gap and
    // share its sync. Ten syncs of their own would take nine gaps.
    assert!(started.elapsed() < 2 * gap, "ten pipelined writes took {:?}", started.elapsed());
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bob) = (name("ana"), name("bob"));
    {
        let store = Store::open(dir.path()).unwrap();
        let record = UserRecord { password_hash: "h".into(), created_at: 1, status: AccountStatus::Active };
        assert!(store.create_user(&ana, &record).unwrap());
        assert!(!store.create_user(&ana, &record).unwrap());
        append(&store, &ana, &bob, "persist", 9);
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.user_exists(&ana).unwrap());
    assert_eq!(store.last_message_id().unwrap(), 1);
    assert_eq!(store.history(&ana, &bob, None, 5).unwrap().messages[0].body, "persist");
    assert!(matches!(append(&store, &ana, &bob, "persist", 9), Appended::Resent(_)));
    assert_eq!(stored(append(&store, &ana, &bob, "next", 10)).id, 2);
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_by_name() {
    let (dir, _store) = open();
    match Store::open(dir.path()) {
        Err(StoreError::InUse { dir: named, pid }) => {
            assert_eq!((named.as_path(), pid), (dir.path(), Some(std::process::id())));
        }
        other => panic!("expected InUse, got {other:?}"),
    }
}

#[test]
fn a_database_emptied_under_its_manifest_is_refused_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bob) = (name("ana"), name("bob"));
    {
        let store = Store::open(dir.path()).unwrap();
        for i in 0..20 {
            append(&store, &ana, &bob, "kept", i);
        }
    }
    // What a power cut on a disk that ignored sled's flushes leaves: empty sled files.
    for file in ["db", "conf"] {
        fs::write(dir.path().join(file), b"").unwrap();
    }
    for entry in fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("snap.") {
            fs::remove_file(path).unwrap();
        }
    }
    match Store::open(dir.path()) {
        Err(StoreError::LostWrites { found: 0, expected, messages: 20, .. }) => assert!(expected > 0),
        other => panic!("expected LostWrites, got {other:?}"),
    }
    // Refusing changed nothing: the manifest still says what was lost.
    let again = Store::open(dir.path());
    assert!(matches!(again, Err(StoreError::LostWrites { .. })), "{again:?}");
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let newer = manifest::Manifest { format: manifest::FORMAT + 1, ..manifest::Manifest::new() };
    newer.write(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(e @ StoreError::NewerFormat { found, supported, .. }) => {
            assert_eq!((found, supported), (manifest::FORMAT + 1, manifest::FORMAT));
            assert!(e.to_string().contains("run a newer papo-server"), "{e}");
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
}

#[test]
fn a_format_1_store_keeps_recognising_resends_and_opens_as_format_2() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, bob) = (name("ana"), name("bob"));
    let now = crate::clock::now_millis();
    let first = stored(append_at(&Store::open(dir.path()).unwrap(), &ana, &bob, "oi", 7, now));
    // Rewrite the store as format 1 left it: the resend entry under `D`, to a bare name.
    {
        // As the store opens it, which waits for the dropped store's writers to let go.
        let trees = open::open_sled(dir.path(), 1 << 20).unwrap();
        let key = keys::dedup(keys::dedup_generation(now), &ana, 7);
        assert!(trees.chat.remove(&key).unwrap().is_some());
        let mut old_key = key.clone();
        old_key[0] = b'D';
        trees.chat.insert(old_key, encode(&(first.id, bob.clone()))).unwrap();
        trees.db.flush().unwrap();
    }
    let old = manifest::Manifest { format: 1, ..manifest::Manifest::read(dir.path()).unwrap().unwrap() };
    old.write(dir.path()).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let resent = append_at(&store, &ana, &bob, "oi", 7, now);
    assert_eq!(resent, Appended::Resent(Posted::Direct(first)));
    assert!(store.trees.chat.scan_prefix(keys::DEDUPS_FORMAT1).next().is_none());
    drop(store);
    assert_eq!(manifest::Manifest::read(dir.path()).unwrap().unwrap().format, manifest::FORMAT);
}

#[test]
fn a_format_2_store_checks_clean_and_opens_as_format_3_with_its_accounts_active() {
    let dir = tempfile::tempdir().unwrap();
    let ana = name("ana");
    {
        let store = Store::open(dir.path()).unwrap();
        with_account(&store, &ana, "$2b$04$ana");
    }
    // Rewrite the account as format 2 left it: no status.
    {
        let trees = open::open_sled(dir.path(), 1 << 20).unwrap();
        trees.users.insert(ana.as_str(), encode(&("$2b$04$ana", 0_i64))).unwrap();
        trees.db.flush().unwrap();
    }
    let old = manifest::Manifest { format: 2, ..manifest::Manifest::read(dir.path()).unwrap().unwrap() };
    old.write(dir.path()).unwrap();
    let report = check(dir.path()).unwrap();
    assert_eq!((report.problems.as_slice(), report.users), (&[][..], 1));

    let store = Store::open(dir.path()).unwrap();
    let record = store.user(&ana).unwrap().unwrap();
    assert_eq!((record.password_hash.as_str(), record.status), ("$2b$04$ana", AccountStatus::Active));
    drop(store);
    assert_eq!(manifest::Manifest::read(dir.path()).unwrap().unwrap().format, manifest::FORMAT);
    assert!(check(dir.path()).unwrap().problems.is_empty());
}

#[test]
fn a_disabled_account_saves_no_token_until_it_is_enabled() {
    let (_dir, store) = open();
    let ana = name("ana");
    let hash = with_account(&store, &ana, "$2b$04$ana");
    let record = TokenRecord { user: ana.clone(), expires_at: i64::MAX };
    assert_eq!(store.set_account_status(&ana, AccountStatus::Disabled).unwrap(), Some(true));
    assert_eq!(store.set_account_status(&ana, AccountStatus::Disabled).unwrap(), Some(false));
    assert_eq!(store.save_token(b"t", &record, hash).unwrap(), Err(AccountChanged::Disabled));
    assert_eq!(store.token(b"t").unwrap(), None);
    assert_eq!(store.set_account_status(&ana, AccountStatus::Active).unwrap(), Some(true));
    store.save_token(b"t", &record, hash).unwrap().unwrap();
    assert_eq!(store.set_account_status(&name("nobody"), AccountStatus::Disabled).unwrap(), None);
}

/// A store as format 0 wrote it: sled records without counts, resend entries without
/// generations, no manifest, and a log segment left by a crash.
mod format0_store {
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Message<'a> {
        from: &'a Username,
        to: &'a Username,
        body: &'a str,
        sent_at: i64,
    }

    #[derive(Serialize)]
    struct Summary {
        unread: u64,
        read_up_to: u64,
        delivered_up_to: u64,
        last_received: u64,
        last: Option<records::StoredLast>,
    }

    /// ana and bob exchange `count` messages (ana sends the even ones); bob has read up
    /// to `bob_read`. The last message reaches sled only through the log.
    fn write(dir: &Path, count: u64, bob_read: u64) {
        let (ana, bob) = (name("ana"), name("bob"));
        let db = sled::Config::new().path(dir).open().unwrap();
        let chat = db.open_tree("chat").unwrap();
        let mut groups = Vec::new();
        for id in 1..=count {
            let (from, to) = if id % 2 == 0 { (&ana, &bob) } else { (&bob, &ana) };
            let message = Message { from, to, body: "old", sent_at: 5 };
            let dedup = (id, to.clone());
            let writes: Vec<(commit::TreeName, Vec<u8>, Option<Vec<u8>>)> = vec![
                (commit::TreeName::Chat, keys::message(from, to, id), Some(encode(&message))),
                (commit::TreeName::Chat, format0_dedup(from, id), Some(encode(&dedup))),
                (commit::TreeName::Chat, keys::LAST_ID.to_vec(), Some(encode(&id))),
            ];
            if id < count {
                for (_, key, value) in &writes {
                    chat.insert(key.as_slice(), value.clone().unwrap()).unwrap();
                }
            } else {
                groups.push(encode(&writes));
            }
        }
        let from_ana = (1..=count).filter(|id| id % 2 == 0).count() as u64;
        let read = (1..=bob_read).filter(|id| id % 2 == 0).count() as u64;
        let bob_view = Summary {
            unread: from_ana - read,
            read_up_to: bob_read,
            delivered_up_to: bob_read,
            last_received: count - count % 2,
            last: None,
        };
        chat.insert(keys::summary(&bob, &ana), encode(&bob_view)).unwrap();
        db.flush().unwrap();
        drop((chat, db));
        // The format-0 log: no header, records of [length][CRC of sequence and payload].
        fs::create_dir_all(dir.join("wal")).unwrap();
        let mut segment = Vec::new();
        for payload in groups {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&1u64.to_le_bytes());
            hasher.update(&payload);
            segment.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
            segment.extend_from_slice(&hasher.finalize().to_le_bytes());
            segment.extend_from_slice(&payload);
        }
        segment.resize(64 * 1024, 0);
        fs::write(dir.join("wal/0000000000000001.log"), segment).unwrap();
    }

    fn format0_dedup(sender: &Username, client_msg_id: u64) -> Vec<u8> {
        let mut key = b"d".to_vec();
        key.extend_from_slice(sender.as_str().as_bytes());
        key.push(0);
        key.extend_from_slice(&client_msg_id.to_be_bytes());
        key
    }

    #[test]
    fn is_replayed_migrated_and_kept_counting() {
        let dir = tempfile::tempdir().unwrap();
        let (ana, bob) = (name("ana"), name("bob"));
        write(dir.path(), 41, 20);
        let store = Store::open(dir.path()).unwrap();
        assert!(dir.path().join(manifest::FILE).exists());
        assert_eq!(store.last_message_id().unwrap(), 41, "the log's last group was replayed");
        let bob_view = store.summary(&bob, &ana).unwrap();
        assert_eq!((bob_view.received, bob_view.unread), (20, 10));
        // Resends of format-0 entries are still recognised; new messages continue the ids.
        assert!(matches!(append(&store, &ana, &bob, "old", 40), Appended::Resent(m) if m.id() == 40));
        assert_eq!(stored(append(&store, &ana, &bob, "new", 1000)).id, 42);
        assert_eq!(store.summary(&bob, &ana).unwrap().unread, 11);
        assert_eq!(store.mark_read(&bob, &ana, 41).unwrap(), Some(41));
        assert_eq!(store.summary(&bob, &ana).unwrap().unread, 1);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.history(&ana, &bob, None, 200).unwrap().messages.len(), 42);
    }

    #[test]
    fn a_migration_cut_short_runs_again_to_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 30, 11);
        // As the store opens it: sled's writers let go of its file a moment after `write`
        // dropped the database, which a plain open raced.
        let trees = open::open_sled(dir.path(), 1 << 20).unwrap();
        let first = migrate::run(&trees, 0).unwrap();
        assert_eq!(first.messages, 29);
        let again = migrate::run(&trees, 0).unwrap();
        assert_eq!((again.messages, again.resends), (29, 0));
        let summary: Summary2 =
            decode(b"s", &trees.chat.get(keys::summary(&name("bob"), &name("ana"))).unwrap().unwrap())
                .unwrap();
        assert_eq!((summary.received, summary.unread), (14, 9));
    }

    use records::Summary as Summary2;
}

mod export_import {
    use super::*;

    /// A store with three users, two conversations, watermarks and resend entries.
    fn populated(dir: &Path) -> Store {
        let store = Store::open(dir).unwrap();
        let (ana, bob, eve) = (name("ana"), name("bob"), name("eve"));
        for user in [&ana, &bob, &eve] {
            let record = UserRecord {
                password_hash: format!("$2b$04${user}"),
                created_at: 7,
                status: AccountStatus::Active,
            };
            assert!(store.create_user(user, &record).unwrap());
        }
        for i in 0..30 {
            let (from, to) = if i % 3 == 0 { (&bob, &ana) } else { (&ana, &bob) };
            append(&store, from, to, &format!("ab {i}"), i);
            append(&store, &eve, &ana, &format!("ea {i}"), i);
        }
        store.mark_read(&bob, &ana, 20).unwrap();
        store.mark_delivered(&bob, &ana, 40).unwrap();
        store.mark_read(&ana, &eve, 50).unwrap();
        store.set_last_seen(&bob, 12_345).unwrap();
        assert_eq!(store.set_account_status(&eve, AccountStatus::Disabled).unwrap(), Some(true));
        store
    }

    fn exported(store: &Store) -> String {
        let mut out = Vec::new();
        store.export(&mut out, 1_000).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_store_survives_an_export_and_an_import_whole() {
        let (from_dir, to_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let original = populated(from_dir.path());
        let text = exported(&original);
        let copy = Store::open(to_dir.path()).unwrap();
        let counts = copy.import(text.as_bytes(), crate::clock::now_millis()).unwrap();
        assert_eq!((counts.users, counts.messages, counts.read_states), (3, 60, 2));
        assert_eq!(exported(&copy), text, "the copy exports to the same text");
        let (ana, bob, eve) = (name("ana"), name("bob"), name("eve"));
        for (owner, peer) in [(&ana, &bob), (&bob, &ana), (&ana, &eve), (&eve, &ana)] {
            assert_eq!(
                copy.summary(owner, peer).unwrap(),
                original.summary(owner, peer).unwrap(),
                "{owner}/{peer}"
            );
            assert_eq!(
                copy.history(owner, peer, None, 200).unwrap(),
                original.history(owner, peer, None, 200).unwrap()
            );
        }
        assert_eq!(copy.user(&ana).unwrap(), original.user(&ana).unwrap());
        assert_eq!(copy.user(&eve).unwrap().unwrap().status, AccountStatus::Disabled);
        assert_eq!((copy.last_seen(&bob).unwrap(), copy.last_seen(&ana).unwrap()), (Some(12_345), None));
        assert_eq!(copy.last_message_id().unwrap(), 60);
        // Resends are still recognised, and new messages continue the ids.
        let resent = append(&copy, &eve, &ana, "ea 29", 29);
        assert!(matches!(resent, Appended::Resent(Posted::Direct(m)) if m.body == "ea 29"));
        assert_eq!(stored(append(&copy, &eve, &ana, "new", 100)).id, 61);
    }

    #[test]
    fn its_lines_have_a_fixed_form() {
        let (ana, bob) = (name("ana"), name("bob"));
        let lines = [
            Line::Header { format: 1, exported_at: 1_764_600_000_000, last_id: 2 },
            Line::User {
                name: ana.clone(),
                password_hash: "$2b$12$x".into(),
                created_at: 5,
                last_seen: Some(9),
                status: AccountStatus::Active,
            },
            Line::User {
                name: bob.clone(),
                password_hash: "$2b$12$y".into(),
                created_at: 5,
                last_seen: None,
                status: AccountStatus::Disabled,
            },
            Line::Message { id: 1, from: ana.clone(), to: bob.clone(), body: "oi".into(), sent_at: 6 },
            Line::ReadState { owner: bob.clone(), peer: ana.clone(), read_up_to: 1, delivered_up_to: 1 },
            Line::Resend { sender: ana, client_msg_id: 7, id: 1, to: Some(bob), group: None },
            Line::End { users: 2, messages: 1, groups: 0, group_messages: 0, invites: 0 },
        ];
        let text: Vec<String> = lines.iter().map(|line| serde_json::to_string(line).unwrap()).collect();
        assert_eq!(
            text,
            [
                r#"{"type":"papo-export","format":1,"exported_at":1764600000000,"last_id":2}"#,
                r#"{"type":"user","name":"ana","password_hash":"$2b$12$x","created_at":5,"last_seen":9}"#,
                r#"{"type":"user","name":"bob","password_hash":"$2b$12$y","created_at":5,"status":"disabled"}"#,
                r#"{"type":"message","id":1,"from":"ana","to":"bob","body":"oi","sent_at":6}"#,
                r#"{"type":"read_state","owner":"bob","peer":"ana","read_up_to":1,"delivered_up_to":1}"#,
                r#"{"type":"resend","sender":"ana","client_msg_id":7,"id":1,"to":"bob"}"#,
                r#"{"type":"end","users":2,"messages":1,"groups":0,"group_messages":0}"#,
            ]
        );
    }

    /// Invite codes travel with an export (format 2), what is left of them included; an
    /// export of format 1, which had none, still imports.
    #[test]
    fn invite_codes_survive_an_export_and_an_import_and_format_1_still_imports() {
        let (from_dir, to_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let original = populated(from_dir.path());
        let once = records::InviteRecord { created_at: 7, expires_at: None, uses_left: 1 };
        let timed = records::InviteRecord { created_at: 8, expires_at: Some(99), uses_left: 3 };
        original.create_invite("AAAA", once).unwrap();
        original.create_invite("BBBB", timed).unwrap();
        let text = exported(&original);
        assert!(text.starts_with(r#"{"type":"papo-export","format":2,"#), "{text}");
        assert!(
            text.contains(r#"{"type":"invite","code":"BBBB","created_at":8,"expires_at":99,"uses_left":3}"#)
        );
        let copy = Store::open(to_dir.path()).unwrap();
        let counts = copy.import(text.as_bytes(), crate::clock::now_millis()).unwrap();
        assert_eq!(counts.invites, 2);
        assert_eq!(copy.invites().unwrap(), [("AAAA".to_owned(), once), ("BBBB".to_owned(), timed)]);
        assert_eq!(exported(&copy), text, "the copy exports to the same text");

        // The same store as a server of format 1 wrote it: no invite lines, no count of them.
        let old: Vec<String> = text
            .lines()
            .filter(|line| !line.starts_with(r#"{"type":"invite""#))
            .map(|line| line.replace(r#""format":2"#, r#""format":1"#).replace(r#","invites":2"#, ""))
            .collect();
        let old_dir = tempfile::tempdir().unwrap();
        let old_copy = Store::open(old_dir.path()).unwrap();
        let counts = old_copy.import(old.join("\n").as_bytes(), crate::clock::now_millis()).unwrap();
        assert_eq!((counts.users, counts.messages, counts.invites), (3, 60, 0));
        assert!(old_copy.invites().unwrap().is_empty());

        // A code twice, a count that disagrees and a format from the future are refused.
        let try_import = |text: String| {
            let dir = tempfile::tempdir().unwrap();
            Store::open(dir.path()).unwrap().import(text.as_bytes(), 0)
        };
        let lines: Vec<&str> = text.lines().collect();
        let invite_line = lines.iter().position(|line| line.contains(r#""code":"AAAA""#)).unwrap();
        let mut twice = lines.clone();
        twice.insert(invite_line, lines[invite_line]);
        assert!(matches!(try_import(twice.join("\n")),
            Err(StoreError::Import { reason, .. }) if reason.contains("invite code AAAA appears twice")));
        let miscounted = text.replace(r#","invites":2"#, r#","invites":1"#);
        assert!(matches!(try_import(miscounted),
            Err(StoreError::Import { reason, .. }) if reason.contains("1 invite codes; the file holds")));
        let future = text.replace(r#""format":2"#, r#""format":3"#);
        assert!(matches!(try_import(future),
            Err(StoreError::Import { line: 1, reason }) if reason.contains("reads formats 1 to 2")));
    }

    #[test]
    fn bad_exports_are_refused_with_their_line() {
        let from_dir = tempfile::tempdir().unwrap();
        let text = exported(&populated(from_dir.path()));
        let lines: Vec<&str> = text.lines().collect();
        let try_import = |text: String| {
            let dir = tempfile::tempdir().unwrap();
            Store::open(dir.path()).unwrap().import(text.as_bytes(), 0)
        };
        let cut_short = lines[..lines.len() - 1].join("\n");
        assert!(
            matches!(try_import(cut_short), Err(StoreError::Import { reason, .. }) if reason.contains("cut short"))
        );
        let headless = lines[1..].join("\n");
        assert!(matches!(try_import(headless), Err(StoreError::Import { line: 1, .. })));
        let twice = [&lines[..2], &lines[1..]].concat().join("\n");
        assert!(
            matches!(try_import(twice), Err(StoreError::Import { reason, .. }) if reason.contains("twice"))
        );
        let garbled = text.replacen("\"message\"", "\"messige\"", 1);
        assert!(matches!(try_import(garbled), Err(StoreError::Import { .. })));
    }

    #[test]
    fn an_import_into_a_store_with_data_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = populated(dir.path());
        let text = exported(&store);
        assert!(matches!(store.import(text.as_bytes(), 0), Err(StoreError::Import { line: 0, .. })));
    }
}

mod check {
    use super::*;

    #[test]
    fn a_cleanly_stopped_store_checks_clean_and_damage_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let (ana, bob) = (name("ana"), name("bob"));
            store
                .create_user(
                    &ana,
                    &UserRecord { password_hash: "h".into(), created_at: 1, status: AccountStatus::Active },
                )
                .unwrap();
            for i in 0..40 {
                append(&store, &ana, &bob, "x", i);
            }
            store.mark_read(&bob, &ana, 30).unwrap();
        }
        let report = super::super::check(dir.path()).unwrap();
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert_eq!((report.users, report.messages, report.summaries, report.resends), (1, 40, 2, 40));

        // A summary that disagrees with the messages, written behind the store's back.
        let trees = open::open_sled(dir.path(), 8 << 20).unwrap();
        let key = keys::summary(&name("bob"), &name("ana"));
        let mut summary: Summary = decode(&key, &trees.chat.get(&key).unwrap().unwrap()).unwrap();
        summary.received = 39;
        trees.chat.insert(&key, encode(&summary)).unwrap();
        trees.chat.insert(b"zzz", b"?".as_slice()).unwrap();
        trees.db.flush().unwrap();
        drop(trees);
        let report = super::super::check(dir.path()).unwrap();
        assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
        assert!(
            report.problems.iter().any(|p| p.contains("bob's summary of ana counts 39")),
            "{:#?}",
            report.problems
        );
        assert!(report.problems.iter().any(|p| p.contains("no known kind")), "{:#?}", report.problems);
    }

    #[test]
    fn a_running_store_is_not_checked() {
        let (dir, _store) = open();
        assert!(matches!(super::super::check(dir.path()), Err(StoreError::InUse { .. })));
    }
}

#[test]
fn a_committer_that_dies_fails_the_store_and_answers_nothing_more() {
    let (_dir, store) = open();
    let told = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let told = Arc::clone(&told);
        store.on_failure(move || told.store(true, std::sync::atomic::Ordering::SeqCst));
    }
    let answer = store.committer.submit(Growth::Maintains, |_| -> Result<()> { panic!("a bug in a write") });
    assert!(matches!(commit::wait(&answer.unwrap()), Err(StoreError::Stopped)));
    // The answer's channel closes while the thread unwinds, a moment before it is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !told.load(std::sync::atomic::Ordering::SeqCst) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(told.load(std::sync::atomic::Ordering::SeqCst), "the failure hook ran");
    assert!(store.failure().is_some_and(|why| why.contains("committer")), "{:?}", store.failure());
    assert!(matches!(store.flush(), Err(StoreError::Stopped)));
}

mod search {
    use super::*;

    #[test]
    fn search_finds_a_users_own_messages_newest_first_ignoring_case_and_pages_on() {
        let (_dir, store) = open();
        let (ana, bob, eve) = (name("ana"), name("bob"), name("eve"));
        for i in 0..60 {
            let body = if i % 3 == 0 { format!("Café number {i}") } else { format!("other {i}") };
            append(&store, &ana, &bob, &body, i);
            append(&store, &eve, &ana, &format!("eve's CAFÉ {i}"), i);
            append(&store, &eve, &bob, "café that ana must never find", 1000 + i);
        }
        let page = store.search(&ana, "café", SearchIn::Everything, None, 10).unwrap();
        assert_eq!(page.hits.len(), 10);
        assert!(page.hits.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
        assert!(page.hits.iter().all(|m| m.from == ana || m.to == ana), "only ana's conversations");
        let mut all = page.hits.clone();
        let mut before = page.next_before;
        while let Some(from) = before {
            let next = store.search(&ana, "CAFÉ", SearchIn::Everything, Some(from), 10).unwrap();
            all.extend(next.hits);
            before = next.next_before;
        }
        assert_eq!(all.len(), 20 + 60, "every match once, across pages");
        let here = store.search(&ana, "café", SearchIn::User(&bob), None, 100).unwrap();
        assert_eq!(here.hits.len(), 20);
        assert_eq!(here.next_before, None);
        assert!(store.search(&ana, "never find", SearchIn::Everything, None, 10).unwrap().hits.is_empty());
    }

    #[test]
    fn a_search_reads_a_bounded_number_of_messages_and_says_where_it_stopped() {
        let (_dir, store) = open();
        let (ana, bob) = (name("ana"), name("bob"));
        let appends = Appends::new();
        let total = SEARCH_BUDGET as u64 + 10;
        for i in 0..total {
            store.append(&ana, &bob, "nothing to see", i, 0, &appends).unwrap();
        }
        (0..total).for_each(|_| drop(appends.next().unwrap()));
        let page = store.search(&ana, "needle", SearchIn::Everything, None, 10).unwrap();
        assert!(page.hits.is_empty());
        assert_eq!(page.next_before, Some(11), "stopped after the budget, before message 10");
        let rest = store.search(&ana, "needle", SearchIn::Everything, page.next_before, 10).unwrap();
        assert_eq!(rest.next_before, None);
    }

    #[test]
    fn last_seen_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ana = name("ana");
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.last_seen(&ana).unwrap(), None);
            store.set_last_seen(&ana, 77).unwrap();
        }
        assert_eq!(Store::open(dir.path()).unwrap().last_seen(&ana).unwrap(), Some(77));
    }
}
