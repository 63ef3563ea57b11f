//! `papo group …`, `papo groups`, and `papo send` / `papo history` with a `#group`, as the
//! real binary against a real server.

use papo_server::testing::{unique_name, TestServer};

use super::{papo, stderr, stdout};

/// Registers one account per name.
fn register(server: &TestServer, names: &[&str]) {
    for name in names {
        stdout(&papo(server, &["register", "--user", name]));
    }
}

/// The part of a `papo history` line after its time.
fn without_times(history: &str) -> Vec<String> {
    history.lines().map(|line| line.split_once(' ').unwrap().1.to_owned()).collect()
}

#[test]
fn a_group_is_created_used_changed_and_deleted_from_scripts() {
    let server = TestServer::start();
    let [ana, bia, caio, dani] = ["ana", "bia", "caio", "dani"].map(unique_name);
    register(&server, &[&ana, &bia, &caio, &dani]);
    let lab = format!("#{}", unique_name("lab"));

    let created =
        stdout(&papo(&server, &["group", "create", "--user", &ana, &lab.to_uppercase(), &bia, &caio]));
    assert_eq!(created, format!("created {lab} with 3 members\n"), "the name is folded");
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &bia])), format!("{lab} 3 0\n"));

    assert_eq!(stdout(&papo(&server, &["send", "--user", &ana, &lab, "hello", "all"])), "");
    stdout(&papo(&server, &["send", "--user", &bia, &lab, "oi\x1b[2J\nnext"]));
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &caio])), format!("{lab} 3 2\n"));
    // Sending marks the group read for the sender.
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &bia])), format!("{lab} 3 0\n"));

    let history = stdout(&papo(&server, &["history", "--user", &caio, &lab]));
    let expected = [format!("{ana} -> {lab}: hello all"), format!("{bia} -> {lab}: oi\\u{{1b}}[2J\\nnext")];
    assert_eq!(without_times(&history), expected, "texts only, sanitised, oldest first");
    let (time, _) = history.split_once(' ').unwrap();
    assert!(time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok());
    let newest = stdout(&papo(&server, &["history", "--user", &caio, &lab, "--limit", "1"]));
    assert_eq!(without_times(&newest), expected[1..]);

    // A member added later reads what came before.
    assert_eq!(
        stdout(&papo(&server, &["group", "add", "--user", &ana, &lab, &dani])),
        format!("added {dani} to {lab}\n")
    );
    assert_eq!(without_times(&stdout(&papo(&server, &["history", "--user", &dani, &lab]))), expected);
    let members = stdout(&papo(&server, &["group", "members", "--user", &ana, &lab]));
    let mut listed: Vec<String> = [
        format!("{ana} online owner"),
        format!("{bia} offline member"),
        format!("{caio} offline member"),
        format!("{dani} offline member"),
    ]
    .into();
    listed.sort();
    assert_eq!(members.lines().collect::<Vec<_>>(), listed, "name order; ana runs the command");

    // A removed member can neither read nor send, and no longer lists the group.
    assert_eq!(
        stdout(&papo(&server, &["group", "remove", "--user", &ana, &lab, &dani])),
        format!("removed {dani} from {lab}\n")
    );
    assert!(stderr(&papo(&server, &["history", "--user", &dani, &lab])).contains("there is no such group"));
    assert!(stderr(&papo(&server, &["send", "--user", &dani, &lab, "still here?"])).contains("no such group"));
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &dani])), "");

    assert_eq!(stdout(&papo(&server, &["group", "leave", "--user", &bia, &lab])), format!("left {lab}\n"));
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &bia])), "");

    let lab2 = format!("{lab}-2");
    assert_eq!(
        stdout(&papo(&server, &["group", "rename", "--user", &ana, &lab, &lab2])),
        format!("renamed {lab} to {lab2}\n")
    );
    assert!(stderr(&papo(&server, &["group", "members", "--user", &ana, &lab])).contains("no such group"));
    assert_eq!(stdout(&papo(&server, &["history", "--user", &caio, &lab2])).lines().count(), 2);

    assert_eq!(
        stdout(&papo(&server, &["group", "handover", "--user", &ana, &lab2, &caio])),
        format!("handed {lab2} over to {caio}\n")
    );
    let members = stdout(&papo(&server, &["group", "members", "--user", &caio, &lab2]));
    assert!(members.contains(&format!("{caio} online owner\n")), "{members}");
    assert!(members.contains(&format!("{ana} offline member\n")), "{members}");
    let not_owner = stderr(&papo(&server, &["group", "delete", "--user", &ana, &lab2]));
    assert_eq!(not_owner, format!("error: cannot delete {lab2}: only the group's owner can do that\n"));

    assert_eq!(
        stdout(&papo(&server, &["group", "delete", "--user", &caio, &lab2])),
        format!("deleted {lab2}\n")
    );
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &ana])), "");
    assert!(stderr(&papo(&server, &["history", "--user", &caio, &lab2])).contains("no such group"));
}

#[test]
fn group_refusals_are_one_line_errors_and_outsiders_learn_nothing() {
    let server = TestServer::start();
    let [ana, bia, eve] = ["ana", "bia", "eve"].map(unique_name);
    register(&server, &[&ana, &bia, &eve]);
    let lab = format!("#{}", unique_name("lab"));
    let nope = format!("#{}", unique_name("nope"));
    stdout(&papo(&server, &["group", "create", "--user", &ana, &lab, &bia]));

    // An outsider gets for an existing group exactly what anyone gets for a missing one.
    let generic = "there is no such group, or you are not in it\n";
    for (args, context) in [
        (vec!["group", "members"], "cannot list the members of"),
        (vec!["group", "add"], "cannot add to"),
        (vec!["group", "leave"], "cannot leave"),
        (vec!["history"], "cannot read the history of"),
    ] {
        for group in [&lab, &nope] {
            let mut argv = args.clone();
            argv.extend(["--user", &eve, group]);
            if args[..] == ["group", "add"] {
                argv.push(&eve);
            }
            let refused = stderr(&papo(&server, &argv));
            assert_eq!(refused, format!("error: {context} {group}: {generic}"), "{argv:?}");
        }
    }
    let sent = stderr(&papo(&server, &["send", "--user", &eve, &lab, "let me in"]));
    assert_eq!(sent, format!("error: cannot send to {lab}: {generic}"));
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &eve])), "");

    // A member who is not the owner may send but not change the group.
    stdout(&papo(&server, &["send", "--user", &bia, &lab, "may I?"]));
    let cannot = |what: &str| format!("error: cannot {what}: only the group's owner can do that\n");
    for (change, refused) in [
        (vec!["add", &eve], cannot(&format!("add to {lab}"))),
        (vec!["remove", &ana], cannot(&format!("remove {ana} from {lab}"))),
        (vec!["rename", "#elsewhere"], cannot(&format!("rename {lab}"))),
        (vec!["delete"], cannot(&format!("delete {lab}"))),
        (vec!["handover", &bia], cannot(&format!("hand {lab} over"))),
    ] {
        let mut argv = vec!["group", change[0], "--user", &bia, &lab];
        argv.extend(&change[1..]);
        assert_eq!(stderr(&papo(&server, &argv)), refused, "{argv:?}");
    }
    let owner_leaves = stderr(&papo(&server, &["group", "leave", "--user", &ana, &lab]));
    assert!(owner_leaves.contains("hand the group over to another member first"), "{owner_leaves}");
    let taken = stderr(&papo(&server, &["group", "create", "--user", &eve, &lab]));
    assert!(taken.contains("another group has that name"), "{taken}");
    let nobody = stderr(&papo(&server, &["group", "create", "--user", &eve, &nope, "nobody"]));
    assert!(nobody.contains("there is no user called nobody"), "{nobody}");
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &eve])), "", "nothing was created");
    let wrong = super::papo_with(&server, &["groups", "--user", &ana], |c| {
        c.env("PAPO_PASSWORD", "not the password");
    });
    assert!(stderr(&wrong).contains("wrong name or password"));

    // Bad names and missing arguments are usage errors: nothing reaches the server.
    for argv in [
        vec!["group", "create", "--user", &ana, "lab"],
        vec!["group", "create", "--user", &ana, "#"],
        vec!["group", "add", "--user", &ana, &lab, "b ia"],
        vec!["group", "add", "--user", &ana, &lab],
        vec!["group", "rename", "--user", &ana, &lab, "lab2"],
        vec!["group", "members", "--user", &ana],
    ] {
        let usage = papo(&server, &argv);
        assert_eq!(usage.status.code(), Some(2), "{argv:?}");
    }
    let no_hash =
        String::from_utf8(papo(&server, &["group", "create", "--user", &ana, "lab"]).stderr).unwrap();
    assert!(no_hash.contains("a group name starts with '#'"), "{no_hash}");
    assert_eq!(stdout(&papo(&server, &["groups", "--user", &ana])), format!("{lab} 2 1\n"), "bia's text");
}

#[test]
fn search_finds_group_texts_for_members_and_refuses_a_group_to_anyone_else() {
    let server = TestServer::start();
    let (ana, bia, caio) = (unique_name("ana"), unique_name("bia"), unique_name("caio"));
    register(&server, &[&ana, &bia, &caio]);
    let lab = format!("#{}", unique_name("lab"));
    stdout(&papo(&server, &["group", "create", "--user", &ana, &lab, &bia]));
    stdout(&papo(&server, &["send", "--user", &ana, &lab, "lunch in the lab"]));
    stdout(&papo(&server, &["send", "--user", &ana, &bia, "lunch, just us"]));

    let all = stdout(&papo(&server, &["search", "--user", &bia, "lunch"]));
    assert_eq!(
        without_times(&all),
        [format!("{ana} -> {lab}: lunch in the lab"), format!("{ana} -> {bia}: lunch, just us")]
    );
    let group = stdout(&papo(&server, &["search", "--user", &bia, "--with", &lab, "lunch"]));
    assert_eq!(without_times(&group), [format!("{ana} -> {lab}: lunch in the lab")]);
    assert_eq!(stdout(&papo(&server, &["search", "--user", &caio, "lunch"])), "");
    let refused = stderr(&papo(&server, &["search", "--user", &caio, "--with", &lab, "lunch"]));
    assert!(refused.contains("there is no such group, or you are not in it"), "{refused}");
}
