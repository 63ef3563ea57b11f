//! The store's group operations against real sled files in temporary directories.

use papo_protocol::{GroupMessage, GroupMessageKind, GroupName, MAX_GROUPS_PER_USER, MAX_GROUP_MEMBERS};

use super::super::commit;
use super::super::records::FormerName;
use super::super::tests::{append, append_at, name, open};
use super::super::*;

fn group_name(raw: &str) -> GroupName {
    GroupName::parse(raw).unwrap()
}

/// A group `raw` owned by `owner` with `members`; its id.
fn create(store: &Store, raw: &str, owner: &Username, members: &[&Username]) -> GroupId {
    let new = NewGroup {
        name: group_name(raw),
        owner: owner.clone(),
        members: members.iter().map(|&m| m.clone()).collect(),
        hide_history: false,
        now: 5,
    };
    GroupId(store.create_group(new).unwrap().unwrap().id)
}

/// Sends `count` texts pipelined, as a session does, and waits for them all.
fn texts(store: &Store, group: GroupId, from: &Username, count: u64) {
    let appends = Appends::new();
    for i in 0..count {
        let text = NewText { group, from: from.clone(), body: format!("t{i}"), client_msg_id: i, now: 9 };
        store.append_group_text(text, &appends).unwrap();
    }
    (0..count).for_each(|_| drop(stored_line(appends.next().unwrap())));
}

/// Sends a text and waits for the store's answer.
fn text(store: &Store, group: GroupId, from: &Username, body: &str, client_msg_id: u64) -> Appended {
    let appends = Appends::new();
    let text = NewText { group, from: from.clone(), body: body.into(), client_msg_id, now: 9 };
    store.append_group_text(text, &appends).unwrap();
    appends.next().unwrap()
}

fn stored_line(appended: Appended) -> GroupMessage {
    match appended {
        Appended::New(Posted::Group { message, .. }) => message,
        other => panic!("expected a new line, got {other:?}"),
    }
}

fn member(store: &Store, group: GroupId, user: &Username) -> MemberRecord {
    store.membership_of(user, group).unwrap().expect("a member").member
}

fn unread(store: &Store, group: GroupId, user: &Username) -> u64 {
    let Membership { group, member, .. } = store.membership_of(user, group).unwrap().unwrap();
    group.texts - member.read.count
}

#[test]
fn a_new_group_has_its_creator_as_owner_and_its_first_line_as_id() {
    let (_dir, store) = open();
    let [ana, bob, cris] = ["ana", "bob", "cris"].map(name);
    let new = NewGroup {
        name: group_name("#Lab"),
        owner: ana.clone(),
        // Duplicates and the owner are skipped.
        members: vec![bob.clone(), cris.clone(), bob.clone(), ana.clone()],
        hide_history: true,
        now: 5,
    };
    let created = store.create_group(new).unwrap().unwrap();
    assert_eq!(
        (created.group.as_str(), &created.from, &created.kind),
        ("#lab", &ana, &GroupMessageKind::Created)
    );
    let id = GroupId(created.id);
    assert_eq!(store.last_message_id().unwrap(), created.id, "the group's id comes from the message ids");
    let lab = store.membership(&ana, &group_name("#lab")).unwrap().unwrap();
    assert_eq!((lab.id, &lab.group.owner, lab.group.members, lab.group.hide_history), (id, &ana, 3, true));
    assert_eq!(store.member_names(id).unwrap(), [ana.clone(), bob.clone(), cris.clone()]);
    for user in [&ana, &bob, &cris] {
        assert_eq!(store.groups_of(user).unwrap(), [id]);
        assert_eq!(member(&store, id, user).joined_at, created.id);
    }
    // The creation line is news to the others, not to its author.
    assert_eq!(store.group_pending_count(&ana).unwrap(), 0);
    assert_eq!(store.pending_count(&bob).unwrap(), 1);
    let taken =
        NewGroup { name: group_name("#lab"), owner: bob, members: Vec::new(), hide_history: false, now: 6 };
    assert_eq!(store.create_group(taken).unwrap(), Err(Refusal::NameTaken));
}

#[test]
fn a_group_holds_at_most_its_limit_of_members_and_a_user_at_most_the_limit_of_groups() {
    let (_dir, store) = open();
    let ana = name("ana");
    // The store checks no account: members here are just names.
    let everyone: Vec<Username> = (0..MAX_GROUP_MEMBERS).map(|i| name(&format!("m{i}"))).collect();
    let too_many = NewGroup {
        name: group_name("#big"),
        owner: ana.clone(),
        members: everyone.clone(),
        hide_history: false,
        now: 0,
    };
    assert_eq!(store.create_group(too_many).unwrap(), Err(Refusal::GroupFull));
    let full = NewGroup {
        name: group_name("#big"),
        owner: ana.clone(),
        members: everyone[1..].to_vec(),
        hide_history: false,
        now: 0,
    };
    let big = GroupId(store.create_group(full).unwrap().unwrap().id);
    assert_eq!(store.group(big).unwrap().unwrap().members as usize, MAX_GROUP_MEMBERS);
    assert_eq!(store.add_members(big, &ana, vec![name("late")], 0).unwrap(), Err(Refusal::GroupFull));
    assert_eq!(
        store.add_members(big, &ana, vec![everyone[1].clone()], 0).unwrap(),
        Ok(Vec::new()),
        "already in"
    );

    let bob = name("bob");
    let small = create(&store, "#small", &ana, &[]);
    for i in 1..MAX_GROUPS_PER_USER {
        create(&store, &format!("#g{i}"), &bob, &[]);
    }
    assert_eq!(store.groups_of(&bob).unwrap().len(), MAX_GROUPS_PER_USER - 1);
    create(&store, "#fits", &bob, &[]);
    let one_more = NewGroup {
        name: group_name("#last"),
        owner: ana.clone(),
        members: vec![bob.clone()],
        hide_history: false,
        now: 0,
    };
    assert_eq!(store.create_group(one_more).unwrap(), Err(Refusal::TooManyGroups(bob.clone())));
    assert_eq!(
        store.add_members(small, &ana, vec![bob.clone()], 0).unwrap(),
        Err(Refusal::TooManyGroups(bob.clone()))
    );
    assert_eq!(store.member_names(small).unwrap(), [ana], "refused whole");
    // Leaving one makes room for another.
    let first = store.groups_of(&bob).unwrap()[0];
    store.delete_group(first, &bob).unwrap().unwrap();
    assert_eq!(store.add_members(small, &name("ana"), vec![bob.clone()], 0).unwrap().unwrap().len(), 1);
}

#[test]
fn a_text_is_stored_once_and_costs_the_same_writes_whatever_the_group_size() {
    let (_dir, store) = open();
    let ana = name("ana");
    let others: Vec<Username> = (0..MAX_GROUP_MEMBERS - 1).map(|i| name(&format!("m{i}"))).collect();
    let refs: Vec<&Username> = others.iter().collect();
    let big = create(&store, "#big", &ana, &refs);
    let staged = store.committer.submit(commit::Growth::Grows, {
        let ana = ana.clone();
        move |staged: &mut commit::Staged<'_>| {
            let text = NewText { group: big, from: ana, body: "oi".into(), client_msg_id: 1, now: 0 };
            group_writes::append_text(staged, text)?;
            Ok(staged.keys_written())
        }
    });
    let written = commit::wait(&staged.unwrap()).unwrap();
    let id = store.last_message_id().unwrap();
    let mut expected = vec![
        keys::group_line(big, id),
        keys::group(big),
        keys::member(big, &ana),
        keys::dedup(keys::dedup_generation(0), &ana, 1),
    ];
    expected.sort();
    assert_eq!(written, expected, "the line, the group, the sender and the resend entry: nothing per member");
    assert_eq!(unread(&store, big, &others[0]), 1);
    assert_eq!(unread(&store, big, &ana), 0, "sending reads what came before");
}

#[test]
fn texts_reach_members_once_resends_are_recognised_and_outsiders_are_refused() {
    let (_dir, store) = open();
    let [ana, bob, eve] = ["ana", "bob", "eve"].map(name);
    let lab = create(&store, "#lab", &ana, &[&bob]);
    let first = stored_line(text(&store, lab, &bob, "oi", 7));
    assert_eq!((&first.from, first.body.as_str(), &first.kind), (&bob, "oi", &GroupMessageKind::Text));
    let again = text(&store, lab, &bob, "oi", 7);
    assert_eq!(again, Appended::Resent(Posted::Group { group: lab, message: first.clone() }));
    assert!(
        matches!(text(&store, lab, &bob, "other", 7), Appended::Reused { original } if original == first.id)
    );
    // The same client id, at the same time, for a direct message is another message.
    assert!(
        matches!(append_at(&store, &bob, &ana, "oi", 7, 9), Appended::Reused { original } if original == first.id)
    );
    assert_eq!(text(&store, lab, &eve, "let me in", 1), Appended::Refused(Refusal::NoSuchGroup));
    assert_eq!(text(&store, GroupId(999), &ana, "nowhere", 1), Appended::Refused(Refusal::NoSuchGroup));
    let membership = store.membership_of(&ana, lab).unwrap().unwrap();
    let (lines, more) = store.group_history(&membership, None, 10).unwrap();
    assert_eq!((lines.len(), more), (2, false), "the creation and one text: {lines:?}");
    assert_eq!(store.pending_count(&ana).unwrap(), 1);

    // A resend after leaving is still the message that was stored.
    assert!(store.leave_group(lab, &bob, 10).unwrap().is_ok());
    assert!(matches!(text(&store, lab, &bob, "oi", 7), Appended::Resent(_)));
    assert_eq!(text(&store, lab, &bob, "new", 8), Appended::Refused(Refusal::NoSuchGroup));
}

#[test]
fn members_added_later_see_the_history_unless_it_is_hidden_and_start_with_nothing_unread() {
    let (_dir, store) = open();
    let [ana, bob, cris] = ["ana", "bob", "cris"].map(name);
    for (raw, hide_history) in [("#open", false), ("#closed", true)] {
        let new =
            NewGroup { name: group_name(raw), owner: ana.clone(), members: vec![], hide_history, now: 0 };
        let group = GroupId(store.create_group(new).unwrap().unwrap().id);
        for i in 0..5 {
            stored_line(text(&store, group, &ana, &format!("before {i}"), i + u64::from(hide_history) * 100));
        }
        let added = store.add_members(group, &ana, vec![bob.clone(), cris.clone()], 1).unwrap().unwrap();
        let kinds: Vec<_> = added.iter().map(|line| line.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                GroupMessageKind::Added { member: bob.clone() },
                GroupMessageKind::Added { member: cris.clone() }
            ]
        );
        assert_eq!(unread(&store, group, &bob), 0, "joining marks what came before as read");
        let membership = store.membership_of(&bob, group).unwrap().unwrap();
        let (lines, _) = store.group_history(&membership, None, 50).unwrap();
        let oldest_seen = lines.last().unwrap().id;
        if hide_history {
            assert_eq!(oldest_seen, added[0].id, "only from the line that added them");
            assert_eq!(lines.len(), 2);
        } else {
            assert_eq!(oldest_seen, group.0, "from the group's creation");
            assert_eq!(lines.len(), 8);
        }
    }
    // Pending at login: for bob, the line that added him and what followed, in both groups.
    let pending = store.pending_after(&bob, 0, 50).unwrap();
    assert_eq!(pending.len(), 4, "{pending:?}");
    assert_eq!(store.pending_count(&bob).unwrap(), 4);
    assert!(pending.windows(2).all(|pair| pair[0].id() < pair[1].id()));
}

#[test]
fn only_the_owner_changes_the_group_and_never_loses_it_by_accident() {
    let (_dir, store) = open();
    let [ana, bob, cris, dan] = ["ana", "bob", "cris", "dan"].map(name);
    let lab = create(&store, "#lab", &ana, &[&bob, &cris]);
    assert_eq!(store.add_members(lab, &bob, vec![dan.clone()], 0).unwrap(), Err(Refusal::NotOwner));
    assert_eq!(store.remove_member(lab, &bob, &cris, 0).unwrap(), Err(Refusal::NotOwner));
    assert_eq!(store.rename_group(lab, &bob, group_name("#mine"), 0).unwrap(), Err(Refusal::NotOwner));
    assert_eq!(store.transfer_group(lab, &bob, &bob, 0).unwrap(), Err(Refusal::NotOwner));
    assert_eq!(store.delete_group(lab, &bob).unwrap(), Err(Refusal::NotOwner));
    assert_eq!(store.add_members(lab, &dan, vec![dan.clone()], 0).unwrap(), Err(Refusal::NoSuchGroup));
    assert_eq!(store.leave_group(lab, &ana, 0).unwrap(), Err(Refusal::OwnerStays));
    assert_eq!(store.remove_member(lab, &ana, &ana, 0).unwrap(), Err(Refusal::OwnerStays));
    assert_eq!(store.remove_member(lab, &ana, &dan, 0).unwrap(), Err(Refusal::NotAMember(dan.clone())));
    assert_eq!(store.transfer_group(lab, &ana, &dan, 0).unwrap(), Err(Refusal::NotAMember(dan.clone())));
    assert_eq!(store.transfer_group(lab, &ana, &ana, 0).unwrap(), Ok(None), "already the owner");

    let handed = store.transfer_group(lab, &ana, &bob, 0).unwrap().unwrap().unwrap();
    assert_eq!(handed.kind, GroupMessageKind::OwnerChanged { to: bob.clone() });
    assert_eq!(store.group(lab).unwrap().unwrap().owner, bob);
    // The former owner is a member like any other now.
    let left = store.leave_group(lab, &ana, 0).unwrap().unwrap();
    assert_eq!((&left.from, &left.kind), (&ana, &GroupMessageKind::Left));
    assert!(store.membership_of(&ana, lab).unwrap().is_none());
    assert!(store.groups_of(&ana).unwrap().is_empty());

    let removed = store.remove_member(lab, &bob, &cris, 0).unwrap().unwrap();
    assert_eq!(removed.kind, GroupMessageKind::Removed { member: cris.clone() });
    assert_eq!(store.member_names(lab).unwrap(), std::slice::from_ref(&bob));
    assert_eq!(store.group(lab).unwrap().unwrap().members, 1);
    assert_eq!(text(&store, lab, &cris, "still here?", 1), Appended::Refused(Refusal::NoSuchGroup));
}

#[test]
fn a_rename_moves_only_the_name_and_every_line_shows_the_new_one() {
    let (_dir, store) = open();
    let [ana, bob] = ["ana", "bob"].map(name);
    let lab = create(&store, "#lab", &ana, &[&bob]);
    create(&store, "#other", &bob, &[]);
    stored_line(text(&store, lab, &bob, "oi", 1));
    assert_eq!(store.rename_group(lab, &ana, group_name("#other"), 0).unwrap(), Err(Refusal::NameTaken));
    assert_eq!(store.rename_group(lab, &ana, group_name("#lab"), 0).unwrap(), Ok(None));
    let renamed = store.rename_group(lab, &ana, group_name("#lab2"), 0).unwrap().unwrap().unwrap();
    assert_eq!(
        (renamed.group.as_str(), &renamed.kind),
        ("#lab2", &GroupMessageKind::Renamed { from: group_name("#lab") })
    );
    assert!(store.membership(&ana, &group_name("#lab")).unwrap().is_none(), "the old name is free");
    let membership = store.membership(&bob, &group_name("#lab2")).unwrap().unwrap();
    assert_eq!(membership.id, lab);
    let (lines, _) = store.group_history(&membership, None, 10).unwrap();
    assert!(lines.iter().all(|line| line.group.as_str() == "#lab2"));
    create(&store, "#lab", &bob, &[]);
}

#[test]
fn a_former_name_finds_its_group_for_queued_texts_until_another_group_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let [ana, bob, eve] = ["ana", "bob", "eve"].map(name);
    {
        let store = Store::open(dir.path()).unwrap();
        let lab = create(&store, "#lab", &ana, &[&bob]);
        store.rename_group(lab, &ana, group_name("#lab2"), 0).unwrap().unwrap();
        let found = |user: &Username, raw: &str| {
            store.membership_by_any_name(user, &group_name(raw)).unwrap().map(|membership| membership.id)
        };
        assert_eq!(found(&bob, "#lab"), Some(lab), "a member finds it by its old name");
        assert_eq!(found(&eve, "#lab"), None, "an outsider learns nothing");
        assert!(store.membership(&bob, &group_name("#lab")).unwrap().is_none(), "commands use the new name");

        // Renamed twice, both old names lead to it; renamed back, the name is its own again.
        store.rename_group(lab, &ana, group_name("#lab3"), 0).unwrap().unwrap();
        assert_eq!((found(&bob, "#lab"), found(&bob, "#lab2")), (Some(lab), Some(lab)));
        store.rename_group(lab, &ana, group_name("#lab"), 0).unwrap().unwrap();
        assert_eq!(store.membership(&bob, &group_name("#lab")).unwrap().map(|m| m.id), Some(lab));

        // A new group that takes a former name takes it for queued texts too.
        let other = create(&store, "#lab2", &eve, &[&bob]);
        assert_eq!(found(&bob, "#lab2"), Some(other));
        assert_eq!(found(&ana, "#lab2"), None, "not ana's group, and the old one no longer answers to it");

        // A deleted group answers to no name.
        store.delete_group(lab, &ana).unwrap().unwrap();
        assert_eq!((found(&bob, "#lab"), found(&bob, "#lab3")), (None, None));

        // A group that took a deleted group's name, gave it up and then added bob: what bob
        // queued for the deleted one must not reach it, nor what anyone queued.
        let newer = create(&store, "#lab3", &eve, &[]);
        store.rename_group(newer, &eve, group_name("#secret"), 0).unwrap().unwrap();
        store.add_members(newer, &eve, vec![bob.clone()], 0).unwrap().unwrap();
        assert_eq!((found(&bob, "#lab3"), found(&eve, "#lab3")), (None, None));

        // Only who was in a group when it gave a name up may still use that name.
        let fresh = create(&store, "#fresh", &eve, &[]);
        store.rename_group(fresh, &eve, group_name("#stale"), 0).unwrap().unwrap();
        store.add_members(fresh, &eve, vec![ana.clone()], 0).unwrap().unwrap();
        assert_eq!(found(&ana, "#fresh"), None, "ana joined after the name was given up");
        assert_eq!(found(&eve, "#fresh"), Some(fresh), "eve was in it then");

        // A name two groups gave up leads to neither.
        let first = create(&store, "#proj", &ana, &[&bob]);
        store.rename_group(first, &ana, group_name("#proj-a"), 0).unwrap().unwrap();
        let second = create(&store, "#proj", &eve, &[&bob]);
        assert_eq!(found(&bob, "#proj"), Some(second), "while a group is called so, it wins");
        store.rename_group(second, &eve, group_name("#proj-b"), 0).unwrap().unwrap();
        assert_eq!((found(&bob, "#proj"), found(&ana, "#proj"), found(&eve, "#proj")), (None, None, None));
    }
    let report = check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A name filed as a group's and as a former one, behind the store's back, is listed.
    let trees = super::super::open::open_sled(dir.path(), 8 << 20).unwrap();
    let former = FormerName::Renamed { group: GroupId(1), renamed_at: 2 };
    trees.chat.insert(keys::former_group_name(&group_name("#lab2")), encode(&former)).unwrap();
    trees.db.flush().unwrap();
    drop(trees);
    let report = check(dir.path()).unwrap();
    assert_eq!(report.problems, ["#lab2 is filed both as a group's name and as the one a group gave up"]);
}

#[test]
fn a_deleted_group_is_gone_at_once_and_its_history_is_pruned_after() {
    let dir = tempfile::tempdir().unwrap();
    let [ana, bob] = ["ana", "bob"].map(name);
    let lab = {
        let store = Store::open(dir.path()).unwrap();
        let lab = create(&store, "#lab", &ana, &[&bob]);
        texts(&store, lab, &bob, 2_500);
        // Staged directly, so the pruner is not woken (it first runs a minute after a start):
        // the lines must still be there, found later by the deletion's mark alone.
        let staged = store.committer.submit(commit::Growth::Maintains, {
            let ana = ana.clone();
            move |staged: &mut commit::Staged<'_>| group_writes::delete(staged, lab, &ana)
        });
        let deleted = commit::wait(&staged.unwrap()).unwrap().unwrap();
        assert_eq!(deleted, Deleted { name: group_name("#lab"), members: vec![ana.clone(), bob.clone()] });
        assert!(store.membership(&ana, &group_name("#lab")).unwrap().is_none());
        assert!(store.groups_of(&bob).unwrap().is_empty());
        assert_eq!(store.pending_count(&bob).unwrap(), 0);
        assert_eq!(text(&store, lab, &bob, "x", 1), Appended::Refused(Refusal::NoSuchGroup));
        lab
    };
    // Reopened: the deletion is durable, and the history waits for the pruner.
    let store = Store::open(dir.path()).unwrap();
    assert!(store.trees.chat.scan_prefix(keys::group_lines_of(lab)).next().is_some());
    let pruned = store.prune(crate::clock::now_millis()).unwrap();
    assert_eq!(pruned.group_lines, 2_501);
    assert!(store.trees.chat.scan_prefix(keys::group_lines_of(lab)).next().is_none());
    assert!(store.trees.chat.scan_prefix(keys::DELETED_GROUPS).next().is_none());
    // The name is free again, for a new group with none of the old history.
    let again = create(&store, "#lab", &bob, &[]);
    assert_ne!(again, lab);
    let membership = store.membership_of(&bob, again).unwrap().unwrap();
    assert_eq!(store.group_history(&membership, None, 10).unwrap().0.len(), 1);
}

#[test]
fn watermarks_move_forward_only_to_lines_of_the_group_and_keep_unread_counts_exact() {
    let (_dir, store) = open();
    let [ana, bob, eve] = ["ana", "bob", "eve"].map(name);
    let lab = create(&store, "#lab", &ana, &[&bob]);
    let mut rng = fastrand::Rng::with_seed(11);
    let mut texts = Vec::new();
    for i in 0..200 {
        // Direct messages in between, so ids of other conversations fall between the lines.
        if rng.bool() {
            append(&store, &eve, &bob, "noise", i);
        }
        texts.push(stored_line(text(&store, lab, &ana, "x", i)).id);
        if rng.u8(..) < 60 {
            let up_to = rng.u64(0..=store.last_message_id().unwrap() + 3);
            let before = member(&store, lab, &bob).read;
            let lines: Vec<u64> = std::iter::once(lab.0).chain(texts.iter().copied()).collect();
            let newest_covered = lines.iter().copied().filter(|&id| id <= up_to).max();
            match store.mark_group_read(lab, &bob, up_to).unwrap() {
                Some(moved) => assert_eq!((moved.from, Some(moved.to)), (before.id, newest_covered)),
                None => assert!(newest_covered.is_none_or(|id| id <= before.id), "{up_to} past {before:?}"),
            }
            let read_up_to = member(&store, lab, &bob).read.id;
            let recount = texts.iter().filter(|&&id| id > read_up_to).count() as u64;
            assert_eq!(unread(&store, lab, &bob), recount, "after {i} texts");
            assert!(member(&store, lab, &bob).delivered.id >= read_up_to, "read implies delivered");
        }
    }
    let last = *texts.last().unwrap();
    assert_eq!(store.mark_group_delivered(lab, &bob, u64::MAX).unwrap().map(|m| m.to), Some(last));
    assert_eq!(store.mark_group_delivered(lab, &bob, last).unwrap(), None, "never twice");
    assert_eq!(store.mark_group_delivered(lab, &bob, 1).unwrap(), None, "never back");
    assert_eq!(store.pending_count(&bob).unwrap(), store.summary(&bob, &eve).unwrap().received);
    assert_eq!(store.mark_group_read(lab, &eve, last).unwrap(), None, "not a member: nothing moves");
}

#[test]
fn the_senders_a_receipt_concerns_are_read_from_a_bounded_number_of_lines() {
    let (_dir, store) = open();
    let [ana, bob, cris] = ["ana", "bob", "cris"].map(name);
    let lab = create(&store, "#lab", &ana, &[&bob, &cris]);
    let first = stored_line(text(&store, lab, &bob, "old", 1));
    for i in 0..10 {
        stored_line(text(&store, lab, &cris, "new", 10 + i));
    }
    let last = store.last_message_id().unwrap();
    assert_eq!(store.text_senders(lab, lab.0, last, 100).unwrap(), [cris.clone(), bob.clone()]);
    assert_eq!(
        store.text_senders(lab, lab.0, last, 5).unwrap(),
        std::slice::from_ref(&cris),
        "only the newest five lines"
    );
    assert_eq!(
        store.text_senders(lab, first.id, last, 100).unwrap(),
        [cris],
        "after the watermark's old place"
    );
}

#[test]
fn a_full_disk_refuses_new_groups_and_texts_but_deletes_and_receipts_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let [ana, bob] = ["ana", "bob"].map(name);
    let (lab, line) = {
        let store = Store::open(dir.path()).unwrap();
        let lab = create(&store, "#lab", &ana, &[&bob]);
        (lab, stored_line(text(&store, lab, &ana, "before", 1)))
    };
    let full = StoreOptions { reserve_bytes: u64::MAX, ..StoreOptions::default() };
    let store = Store::open_with(dir.path(), full).unwrap();
    let new = NewGroup {
        name: group_name("#new"),
        owner: ana.clone(),
        members: vec![],
        hide_history: false,
        now: 0,
    };
    assert!(matches!(store.create_group(new), Err(StoreError::StorageFull { .. })));
    let appends = Appends::new();
    let refused = NewText { group: lab, from: ana.clone(), body: "refused".into(), client_msg_id: 2, now: 0 };
    store.append_group_text(refused, &appends).unwrap();
    assert!(matches!(appends.next(), Err(StoreError::StorageFull { .. })));
    assert!(store.mark_group_read(lab, &bob, line.id).unwrap().is_some());
    assert!(store.delete_group(lab, &ana).unwrap().is_ok());
}

#[test]
fn staged_member_changes_are_seen_by_a_delete_in_the_same_group_of_writes() {
    let (_dir, store) = open();
    let [ana, bob, cris] = ["ana", "bob", "cris"].map(name);
    let lab = create(&store, "#lab", &ana, &[&bob]);
    let staged = store.committer.submit(commit::Growth::Grows, {
        let (ana, cris) = (ana.clone(), cris.clone());
        move |staged: &mut commit::Staged<'_>| {
            group_writes::add(staged, lab, &ana, vec![cris], 0)?.unwrap();
            Ok(group_writes::delete(staged, lab, &ana)?.unwrap())
        }
    });
    let deleted = commit::wait(&staged.unwrap()).unwrap();
    assert_eq!(
        deleted.members,
        [ana.clone(), bob, cris.clone()],
        "cris, added in the same group, is deleted too"
    );
    assert!(store.groups_of(&cris).unwrap().is_empty());
    assert!(store.trees.chat.get(keys::membership_count(&cris)).unwrap().is_none());
    assert!(store.trees.chat.scan_prefix(keys::members_of(lab)).next().is_none());
}

#[test]
fn groups_survive_an_export_and_an_import_and_a_clean_store_with_groups_checks_clean() {
    let (from_dir, to_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let [ana, bob, cris] = ["ana", "bob", "cris"].map(name);
    let exported = {
        let store = Store::open(from_dir.path()).unwrap();
        for user in [&ana, &bob, &cris] {
            let record = UserRecord {
                password_hash: format!("$2b$04${user}"),
                created_at: 7,
                status: AccountStatus::Active,
            };
            assert!(store.create_user(user, &record).unwrap());
        }
        let lab = create(&store, "#lab", &ana, &[&bob]);
        texts(&store, lab, &bob, 5);
        assert_eq!(store.add_members(lab, &ana, vec![cris.clone()], 10).unwrap().unwrap().len(), 1);
        texts(&store, lab, &cris, 3);
        let middle = store.last_message_id().unwrap() - 2;
        store.mark_group_read(lab, &ana, middle).unwrap();
        let gone = create(&store, "#gone", &bob, &[&ana]);
        assert!(store.delete_group(gone, &bob).unwrap().is_ok());
        let mut out = Vec::new();
        let counts = store.export(&mut out, 1_000).unwrap();
        assert_eq!((counts.groups, counts.group_messages), (1, 10), "the deleted group is not exported");
        String::from_utf8(out).unwrap()
    };
    let report = check(from_dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!((report.groups, report.members), (1, 3));

    // The texts' resend entries may be in the export or not: they are dated 1970, and the
    // pruner that the deletion woke may already have dropped them.
    let copy = Store::open(to_dir.path()).unwrap();
    copy.import(exported.as_bytes(), crate::clock::now_millis()).unwrap();
    let mut again = Vec::new();
    copy.export(&mut again, 1_000).unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), exported, "the copy exports to the same text");
    let lab = copy.membership(&cris, &group_name("#lab")).unwrap().expect("cris is still in #lab");
    assert_eq!(copy.group_history(&lab, None, 100).unwrap().0.len(), 10);
    assert_eq!(unread(&copy, lab.id, &ana), 2, "ana's read mark came along");
    assert!(copy.membership(&ana, &group_name("#gone")).unwrap().is_none());
    // New lines continue after the newest id ever handed out, the deleted group's included.
    let next = stored_line(text(&copy, lab.id, &cris, "after the import", 100));
    assert_eq!(next.id, 12);
}

#[test]
fn a_search_through_groups_reads_the_same_bounded_number_of_messages() {
    let (_dir, store) = open();
    let (ana, bob) = (name("ana"), name("bob"));
    let lab = create(&store, "#lab", &ana, &[&bob]);
    texts(&store, lab, &ana, SEARCH_BUDGET as u64 + 10);
    let membership = store.membership(&bob, &group_name("#lab")).unwrap().unwrap();
    for scope in [SearchIn::Everything, SearchIn::Group(&membership)] {
        let page = store.search(&bob, "needle", scope, None, 10).unwrap();
        assert!(page.group_hits.is_empty());
        let stopped = page.next_before.expect("stopped after the budget");
        let rest = store.search(&bob, "needle", scope, Some(stopped), 10).unwrap();
        assert_eq!(rest.next_before, None, "the rest (the creation line and 10 texts) in one request");
    }
    // Texts count as hits; the creation line has no text to match.
    let found = store.search(&bob, "t7", SearchIn::Group(&membership), None, 2).unwrap();
    assert_eq!(found.group_hits.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(), ["t7999", "t7998"]);
}
