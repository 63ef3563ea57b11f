//! Search and last seen against the real server over TLS: nobody finds another user's
//! messages, a search does not hold up anyone's sends, and last seen outlives a restart.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use papo_protocol::{Client, ErrorCode, Request, Username};
use papo_server::store::{AccountStatus, Appends, Store, UserRecord, SEARCH_BUDGET};

fn bodies(client: &mut Client, query: &str, with: Option<&str>) -> Vec<String> {
    let page = client.search(query, with, None, 50).expect("search");
    assert_eq!(page.next_before, None, "a small store is searched in one request");
    page.hits.into_iter().map(|m| m.body).collect()
}

#[test]
fn nobody_finds_another_users_messages() {
    let server = TestServer::start();
    let (mut ana, a) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    let (mut carol, c) = server.user("carol");
    ana.send(b.name.as_str(), "o plano SECRETO", 1).unwrap();
    bia.send(a.name.as_str(), "secreto também", 1).unwrap();
    carol.send(a.name.as_str(), "oi ana", 1).unwrap();

    assert_eq!(bodies(&mut ana, "secreto", None), ["secreto também", "o plano SECRETO"]);
    assert_eq!(bodies(&mut carol, "secreto", None), Vec::<String>::new());
    // Naming someone else's conversation still searches only one's own.
    assert_eq!(bodies(&mut carol, "secreto", Some(a.name.as_str())), Vec::<String>::new());
    assert_eq!(bodies(&mut carol, "oi", Some(a.name.as_str())), ["oi ana"]);
    assert_eq!(bodies(&mut carol, "plano", Some(b.name.as_str())), Vec::<String>::new());
    assert_eq!(bodies(&mut ana, "secreto", Some(c.name.as_str())), Vec::<String>::new());

    // Pages go on from where the last one stopped.
    let first = ana.search("secreto", None, None, 1).unwrap();
    assert_eq!(first.hits.len(), 1);
    let rest = ana.search("secreto", None, first.next_before, 1).unwrap();
    assert_eq!(rest.hits.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["o plano SECRETO"]);
}

/// `searcher` with one conversation of `count` messages with `peer`, and two more users
/// for the sends, made straight in a store in `dir` (far quicker than over the wire).
fn fill(dir: &std::path::Path, count: u64) {
    let name = |raw: &str| Username::parse(raw).unwrap();
    let store = Store::open(dir).unwrap();
    let password_hash = bcrypt::hash(PASSWORD, 4).unwrap();
    for user in ["searcher", "peer", "sender", "receiver"] {
        assert!(store
            .create_user(
                &name(user),
                &UserRecord {
                    password_hash: password_hash.clone(),
                    created_at: 0,
                    status: AccountStatus::Active
                }
            )
            .unwrap());
    }
    let (searcher, peer) = (name("searcher"), name("peer"));
    let appends = Appends::new();
    let mut queued = 0;
    for i in 0..count {
        store
            .append(&searcher, &peer, &format!("message {i} of a long conversation"), i, 0, &appends)
            .unwrap();
        queued += 1;
        if queued == 4096 || i + 1 == count {
            (0..queued).for_each(|_| drop(appends.next().unwrap()));
            queued = 0;
        }
    }
}

#[test]
fn a_search_never_stalls_other_users_sends() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), SEARCH_BUDGET as u64);
    let server = TestServer::start_in(dir.path(), |_| {});
    let (mut searcher, _) = server.login("searcher");
    let (mut sender, _) = server.login("sender");
    let acknowledged = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let (started, ended) = std::thread::scope(|scope| {
        scope.spawn(|| {
            for client_msg_id in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                sender.send("receiver", "sent while someone searches", client_msg_id).unwrap();
                acknowledged.lock().unwrap().push(Instant::now());
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while acknowledged.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the first send was never acknowledged");
            std::thread::sleep(Duration::from_millis(5));
        }
        // A text no message holds: the search reads its whole budget.
        let started = Instant::now();
        let page = searcher.search("no message says this", None, None, 50).unwrap();
        let ended = Instant::now();
        stop.store(true, Ordering::Relaxed);
        assert!(page.hits.is_empty());
        (started, ended)
    });
    // Had the search gone through the committer, no send could have been stored meanwhile.
    let during = acknowledged.lock().unwrap().iter().filter(|&&at| at > started && at < ended).count();
    assert!(
        during >= 2,
        "{during} sends were acknowledged during a search of {SEARCH_BUDGET} messages lasting {:?}",
        ended - started
    );
}

#[test]
fn last_seen_is_kept_when_the_last_session_leaves_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let ana = unique_name("ana");
    server.connect().register(&ana, PASSWORD).unwrap();
    let (first, _) = server.login(&ana);
    let (second, _) = server.login(&ana);
    let (mut watcher, bia) = server.user("bia");
    let seen = |watcher: &mut Client| {
        let all = contacts(watcher);
        let contact = all.into_iter().find(|c| c.name.as_str() == ana).expect("ana is a contact");
        (contact.online, contact.last_seen)
    };
    assert_eq!(seen(&mut watcher), (true, None));
    drop(first);
    let before = papo_server::clock::now_millis();
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    let at = loop {
        // Presence changes as the session leaves; the time is stored just after.
        if let (false, Some(at)) = seen(&mut watcher) {
            if at >= before {
                break at;
            }
        }
        assert!(Instant::now() < deadline, "ana never shown offline with the time she left");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(at <= papo_server::clock::now_millis(), "{at} is in the future");
    drop(watcher);
    server.stop().unwrap();

    let server = TestServer::start_in(dir.path(), |_| {});
    let (mut watcher, _) = server.login(bia.name.as_str());
    assert_eq!(seen(&mut watcher), (false, Some(at)));
}

fn refused(result: Result<impl std::fmt::Debug, papo_protocol::ClientError>) -> Option<ErrorCode> {
    result.expect_err("refused").code()
}

/// (group or peer, body) of every match of one search, newest first.
fn found(client: &mut Client, query: &str, with: Option<&str>) -> Vec<(String, String)> {
    let page = client.search(query, with, None, 50).expect("search");
    assert_eq!(page.next_before, None, "a small store is searched in one request");
    let mut hits: Vec<_> = page.hits.into_iter().map(|m| (m.id, m.to.to_string(), m.body)).collect();
    hits.extend(page.group_hits.into_iter().map(|l| (l.id, l.group.to_string(), l.body)));
    hits.sort_unstable_by_key(|hit| std::cmp::Reverse(hit.0));
    hits.into_iter().map(|(_, to, body)| (to, body)).collect()
}

#[test]
fn a_search_covers_the_groups_one_is_in_and_no_other() {
    let server = TestServer::start();
    let (mut ana, _) = server.user("ana");
    let (mut bia, b) = server.user("bia");
    let (mut caio, c) = server.user("caio");
    let lab = format!("#{}", unique_name("lab"));
    ana.create_group(&lab, &[b.name.as_str()], false).unwrap();
    ana.send(&lab, "o plano secreto do grupo", 1).unwrap();
    ana.send(b.name.as_str(), "secreto só para a bia", 2).unwrap();
    bia.send(&lab, "nada aqui", 1).unwrap();
    let bia_name = b.name.to_string();

    let both = [
        (bia_name.clone(), "secreto só para a bia".to_owned()),
        (lab.clone(), "o plano secreto do grupo".to_owned()),
    ];
    assert_eq!(found(&mut bia, "SECRETO", None), both);
    assert_eq!(
        found(&mut bia, "secreto", Some(&lab)),
        [(lab.clone(), "o plano secreto do grupo".to_owned())]
    );
    assert_eq!(found(&mut ana, "plano", Some(&lab)), [(lab.clone(), "o plano secreto do grupo".to_owned())]);

    // A non-member finds nothing of it, and naming it gets the error of a group that is not.
    assert_eq!(found(&mut caio, "secreto", None), Vec::<(String, String)>::new());
    assert_eq!(refused(caio.search("secreto", Some(&lab), None, 50)), Some(ErrorCode::NoSuchGroup));
    let nowhere = format!("#{}", unique_name("nowhere"));
    assert_eq!(refused(caio.search("secreto", Some(&nowhere), None, 50)), Some(ErrorCode::NoSuchGroup));
    assert_eq!(refused(caio.search("secreto", Some("#"), None, 50)), Some(ErrorCode::InvalidName));

    // Added later, a member finds the past of a group that shows it; removed, nothing.
    ana.request_done(Request::AddMembers { group: lab.clone(), members: vec![c.name.to_string()] }).unwrap();
    assert_eq!(found(&mut caio, "secreto", None), [(lab.clone(), "o plano secreto do grupo".to_owned())]);
    ana.request_done(Request::RemoveMember { group: lab.clone(), member: c.name.to_string() }).unwrap();
    assert_eq!(found(&mut caio, "secreto", None), Vec::<(String, String)>::new());
    assert_eq!(refused(caio.search("secreto", Some(&lab), None, 50)), Some(ErrorCode::NoSuchGroup));

    // A group that hides its past from later members keeps it out of their searches too.
    let quiet = format!("#{}", unique_name("quiet"));
    ana.create_group(&quiet, &[], true).unwrap();
    ana.send(&quiet, "secreto de antes", 3).unwrap();
    ana.request_done(Request::AddMembers { group: quiet.clone(), members: vec![c.name.to_string()] })
        .unwrap();
    ana.send(&quiet, "secreto de depois", 4).unwrap();
    assert_eq!(found(&mut caio, "secreto", Some(&quiet)), [(quiet.clone(), "secreto de depois".to_owned())]);

    // Pages of direct and group matches together go on from where the last stopped.
    let first = bia.search("secreto", None, None, 1).unwrap();
    assert_eq!((first.hits.len(), first.group_hits.len()), (1, 0));
    let rest = bia.search("secreto", None, first.next_before, 1).unwrap();
    assert_eq!(
        rest.group_hits.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        ["o plano secreto do grupo"]
    );
}
