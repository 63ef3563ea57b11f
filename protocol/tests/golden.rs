//! The exact bytes of every wire frame: a reordered field or enum variant changes them, which a
//! round trip cannot notice but an older peer would. A failure here is a protocol change: bump
//! `PROTOCOL_VERSION` and update the bytes (and docs/PROTOCOL.md) deliberately.

use papo_protocol::{
    frame, ChatMessage, ClientFrame, Contact, ContactPage, ErrorCode, ErrorReply, Event, GroupHistoryPage,
    GroupInfo, GroupMember, GroupMessage, GroupMessageKind, GroupName, GroupSummary, Hello, HistoryPage,
    LastMessage, LoggedIn, ReceiptKind, Reply, Request, SearchPage, ServerFrame, Username, Welcome,
    MAX_FRAME_LEN,
};

fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

fn hex<T: serde::Serialize>(frame: &T) -> String {
    frame::encode(frame, MAX_FRAME_LEN).unwrap().iter().map(|b| format!("{b:02x}")).collect()
}

fn request(id: u64, request: Request) -> ClientFrame {
    ClientFrame::Request { id, request }
}

fn group(raw: &str) -> GroupName {
    GroupName::parse(raw).unwrap()
}

fn group_message(id: u64, kind: GroupMessageKind) -> GroupMessage {
    let body = if kind == GroupMessageKind::Text { "oi" } else { "" };
    GroupMessage { id, group: group("#lab"), from: name("ana"), body: body.into(), sent_at: 5, kind }
}

fn message() -> ChatMessage {
    ChatMessage { id: 300, from: name("ana"), to: name("bob"), body: "oi".into(), sent_at: 1_764_600_000_000 }
}

/// Every client frame, every request.
fn client_frames() -> Vec<(&'static str, ClientFrame)> {
    vec![
        ("hello", ClientFrame::Hello(Hello { protocol_version: 3, client_name: "papo".into() })),
        (
            "register",
            request(1, Request::Register { name: "ana".into(), password: "pw".into(), invite: None }),
        ),
        ("login", request(2, Request::Login { name: "ana".into(), password: "pw".into() })),
        ("resume", request(3, Request::Resume { token: "t0k".into() })),
        ("send", request(4, Request::Send { to: "bob".into(), body: "oi".into(), client_msg_id: 7 })),
        ("history", request(5, Request::History { with: "bob".into(), before: Some(300), limit: 50 })),
        ("contacts", request(6, Request::Contacts { after: None })),
        ("mark_read", request(7, Request::MarkRead { with: "bob".into(), up_to: 300 })),
        ("delivered", request(8, Request::Delivered { from: "bob".into(), up_to: 300 })),
        ("ping", request(9, Request::Ping)),
        ("logout", request(10, Request::Logout)),
        (
            "search",
            request(
                11,
                Request::Search {
                    query: "oi".into(),
                    with: Some("bob".into()),
                    before: Some(300),
                    limit: 50,
                },
            ),
        ),
        ("typing", request(12, Request::Typing { to: "bob".into() })),
        ("change_password", request(13, Request::ChangePassword { old: "pw".into(), new: "pw2".into() })),
        (
            "create_group",
            request(
                14,
                Request::CreateGroup { name: "#lab".into(), members: vec!["bob".into()], hide_history: true },
            ),
        ),
        (
            "add_members",
            request(15, Request::AddMembers { group: "#lab".into(), members: vec!["cris".into()] }),
        ),
        ("remove_member", request(16, Request::RemoveMember { group: "#lab".into(), member: "cris".into() })),
        ("leave_group", request(17, Request::LeaveGroup { group: "#lab".into() })),
        ("rename_group", request(18, Request::RenameGroup { group: "#lab".into(), to: "#lab2".into() })),
        ("delete_group", request(19, Request::DeleteGroup { group: "#lab".into() })),
        ("transfer_group", request(20, Request::TransferGroup { group: "#lab".into(), to: "bob".into() })),
        ("groups", request(21, Request::Groups)),
        ("group_info", request(22, Request::GroupInfo { group: "#lab".into() })),
        (
            "register_with_invite",
            request(
                23,
                Request::Register { name: "ana".into(), password: "pw".into(), invite: Some("c0de".into()) },
            ),
        ),
        ("logout_everywhere", request(24, Request::LogoutEverywhere)),
    ]
}

/// Every server frame, reply, event and error code.
fn server_frames() -> Vec<(&'static str, ServerFrame)> {
    let reply = |id, result| ServerFrame::Reply { id, result };
    let last = LastMessage { id: 300, from: name("ana"), sent_at: 5, preview: "oi".into() };
    let mut frames = vec![
        ("welcome", ServerFrame::Welcome(Welcome { protocol_version: 2, server_version: "0.1.0".into() })),
        ("registered", reply(1, Ok(Reply::Registered))),
        (
            "logged_in",
            reply(2, Ok(Reply::LoggedIn(LoggedIn { name: name("ana"), token: "t".into(), pending: 3 }))),
        ),
        ("sent", reply(4, Ok(Reply::Sent { id: 300, sent_at: 5 }))),
        (
            "history",
            reply(
                5,
                Ok(Reply::History(HistoryPage {
                    messages: vec![message()],
                    more: true,
                    peer_delivered_up_to: 299,
                    peer_read_up_to: 298,
                })),
            ),
        ),
        (
            "contacts",
            reply(
                6,
                Ok(Reply::Contacts(ContactPage {
                    contacts: vec![Contact {
                        name: name("bob"),
                        online: false,
                        unread: 2,
                        last: Some(last.clone()),
                        last_seen: Some(6),
                        deleted: false,
                    }],
                    next_after: Some(name("bob")),
                })),
            ),
        ),
        ("done", reply(7, Ok(Reply::Done))),
        ("pong", reply(9, Ok(Reply::Pong))),
        ("rejected", reply(4, Err(ErrorReply::new(ErrorCode::UnknownUser, "no")))),
        ("message", ServerFrame::Event(Event::Message(message()))),
        ("presence", ServerFrame::Event(Event::Presence { user: name("bob"), online: false })),
        (
            "receipt",
            ServerFrame::Event(Event::Receipt {
                peer: name("bob"),
                kind: ReceiptKind::Delivered,
                up_to: 300,
            }),
        ),
        ("shutting_down", ServerFrame::Event(Event::ShuttingDown)),
        (
            "own_receipt",
            ServerFrame::Event(Event::OwnReceipt { peer: name("bob"), kind: ReceiptKind::Read, up_to: 300 }),
        ),
        ("user_registered", ServerFrame::Event(Event::UserRegistered { user: name("cris") })),
        (
            "search",
            reply(
                11,
                Ok(Reply::Search(SearchPage {
                    hits: vec![message()],
                    group_hits: vec![group_message(301, GroupMessageKind::Text)],
                    next_before: Some(300),
                })),
            ),
        ),
        ("typing", ServerFrame::Event(Event::Typing { from: name("bob") })),
        (
            "group",
            reply(
                11,
                Ok(Reply::Group(GroupInfo {
                    name: group("#lab"),
                    owner: name("ana"),
                    created_at: 5,
                    hide_history: false,
                    members: vec![GroupMember {
                        name: name("bob"),
                        online: true,
                        joined_at: 300,
                        delivered_up_to: 302,
                        read_up_to: 301,
                    }],
                })),
            ),
        ),
        (
            "groups",
            reply(
                18,
                Ok(Reply::Groups(vec![GroupSummary {
                    name: group("#lab"),
                    owner: name("ana"),
                    members: 3,
                    unread: 2,
                    last: Some(last),
                }])),
            ),
        ),
        (
            "group_history",
            reply(
                5,
                Ok(Reply::GroupHistory(GroupHistoryPage {
                    group: group("#lab"),
                    messages: vec![group_message(301, GroupMessageKind::Text)],
                    more: false,
                })),
            ),
        ),
        (
            "group_message",
            ServerFrame::Event(Event::GroupMessage(group_message(300, GroupMessageKind::Text))),
        ),
        (
            "group_created",
            ServerFrame::Event(Event::GroupMessage(group_message(300, GroupMessageKind::Created))),
        ),
        (
            "group_added",
            ServerFrame::Event(Event::GroupMessage(group_message(
                300,
                GroupMessageKind::Added { member: name("bob") },
            ))),
        ),
        ("group_left", ServerFrame::Event(Event::GroupMessage(group_message(300, GroupMessageKind::Left)))),
        (
            "group_removed_line",
            ServerFrame::Event(Event::GroupMessage(group_message(
                300,
                GroupMessageKind::Removed { member: name("bob") },
            ))),
        ),
        (
            "group_renamed",
            ServerFrame::Event(Event::GroupMessage(group_message(
                300,
                GroupMessageKind::Renamed { from: group("#old") },
            ))),
        ),
        (
            "group_owner_changed",
            ServerFrame::Event(Event::GroupMessage(group_message(
                300,
                GroupMessageKind::OwnerChanged { to: name("bob") },
            ))),
        ),
        (
            "group_receipt",
            ServerFrame::Event(Event::GroupReceipt {
                group: group("#lab"),
                member: name("bob"),
                kind: ReceiptKind::Read,
                up_to: 300,
            }),
        ),
        ("group_removed", ServerFrame::Event(Event::GroupRemoved { group: group("#lab"), by: name("ana") })),
        ("group_deleted", ServerFrame::Event(Event::GroupDeleted { group: group("#lab"), by: name("ana") })),
        ("user_deleted", ServerFrame::Event(Event::UserDeleted { user: name("bob") })),
    ];
    let codes = [
        ErrorCode::UnsupportedVersion,
        ErrorCode::InvalidCredentials,
        ErrorCode::InvalidToken,
        ErrorCode::NameTaken,
        ErrorCode::InvalidName,
        ErrorCode::InvalidPassword,
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownUser,
        ErrorCode::NotLoggedIn,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Malformed,
        ErrorCode::ServerFull,
        ErrorCode::ShuttingDown,
        ErrorCode::IdleTimeout,
        ErrorCode::Internal,
        ErrorCode::TlsRequired,
        ErrorCode::PlaintextOnly,
        ErrorCode::StorageFull,
        ErrorCode::NoSuchGroup,
        ErrorCode::NotGroupOwner,
        ErrorCode::LimitReached,
        ErrorCode::AccountDisabled,
        ErrorCode::RegistrationClosed,
        ErrorCode::InviteRequired,
        ErrorCode::InviteInvalid,
    ];
    frames.extend(codes.into_iter().map(|code| ("fatal", ServerFrame::Fatal(ErrorReply::new(code, "x")))));
    frames
}

const CLIENT: &[&str] = &[
    "000000070003047061706f",                   // hello
    "0000000b01010003616e6102707700",           // register
    "0000000a01020103616e61027077",             // login
    "000000070103020374306b",                   // resume
    "0000000b01040303626f62026f6907",           // send
    "0000000c01050403626f6201fb012c32",         // history
    "0000000401060500",                         // contacts
    "0000000a01070603626f62fb012c",             // mark_read
    "0000000a01080703626f62fb012c",             // delivered
    "00000003010908",                           // ping
    "00000003010a09",                           // logout
    "00000010010b0a026f690103626f6201fb012c32", // search
    "00000007010c0b03626f62",                   // typing
    "0000000a010d0c02707703707732",             // change_password
    "0000000e010e0d04236c61620103626f6201",     // create_group
    "0000000e010f0e04236c6162010463726973",     // add_members
    "0000000d01100f04236c61620463726973",       // remove_member
    "0000000801111004236c6162",                 // leave_group
    "0000000e01121104236c616205236c616232",     // rename_group
    "0000000801131204236c6162",                 // delete_group
    "0000000c01141304236c616203626f62",         // transfer_group
    "00000003011514",                           // groups
    "0000000801161504236c6162",                 // group_info
    "0000001001170003616e61027077010463306465", // register_with_invite
    "00000003011816",                           // logout_everywhere
];

const SERVER: &[&str] = &[
    "00000008000205302e312e30",       // welcome
    "0000000401010000",               // registered
    "0000000b0102000103616e61017403", // logged_in
    "0000000801040002fb012c0a",       // sent
    "000000230105000301fb012c03616e6103626f62026f69fd00000335b4b65c0001fb012bfb012a", // history
    "0000001f010600040103626f62000201fb012c03616e610a026f69010c000103626f62", // contacts
    "0000000401070005",               // done
    "0000000401090006",               // pong
    "0000000701040107026e6f",         // rejected
    "000000190200fb012c03616e6103626f62026f69fd00000335b4b65c00", // message
    "00000007020103626f6200",         // presence
    "0000000a020203626f6200fb012c",   // receipt
    "000000020203",                   // shutting_down
    "0000000a020403626f6201fb012c",   // own_receipt
    "0000000702050463726973",         // user_registered
    "00000032010b000701fb012c03616e6103626f62026f69fd00000335b4b65c0001fb012d04236c616203616e61026f690a0001fb012c", // search
    "00000006020603626f62",           // typing
    "0000001e010b000804236c616203616e610a000103626f6201fb012cfb012efb012d", // group
    "0000001c011200090104236c616203616e61030201fb012c03616e610a026f69", // groups
    "0000001c0105000a04236c616201fb012d04236c616203616e61026f690a0000", // group_history
    "000000130207fb012c04236c616203616e61026f690a00", // group_message
    "000000110207fb012c04236c616203616e61000a01", // group_created
    "000000150207fb012c04236c616203616e61000a0203626f62", // group_added
    "000000110207fb012c04236c616203616e61000a03", // group_left
    "000000150207fb012c04236c616203616e61000a0403626f62", // group_removed_line
    "000000160207fb012c04236c616203616e61000a0504236f6c64", // group_renamed
    "000000150207fb012c04236c616203616e61000a0603626f62", // group_owner_changed
    "0000000f020804236c616203626f6201fb012c", // group_receipt
    "0000000b020904236c616203616e61", // group_removed
    "0000000b020a04236c616203616e61", // group_deleted
    "00000006020b03626f62",           // user_deleted
    "0000000403000178",               // fatal
    "0000000403010178",               // fatal
    "0000000403020178",               // fatal
    "0000000403030178",               // fatal
    "0000000403040178",               // fatal
    "0000000403050178",               // fatal
    "0000000403060178",               // fatal
    "0000000403070178",               // fatal
    "0000000403080178",               // fatal
    "0000000403090178",               // fatal
    "00000004030a0178",               // fatal
    "00000004030b0178",               // fatal
    "00000004030c0178",               // fatal
    "00000004030d0178",               // fatal
    "00000004030e0178",               // fatal
    "00000004030f0178",               // fatal
    "0000000403100178",               // fatal
    "0000000403110178",               // fatal
    "0000000403120178",               // fatal
    "0000000403130178",               // fatal
    "0000000403140178",               // fatal
    "0000000403150178",               // fatal
    "0000000403160178",               // fatal
    "0000000403170178",               // fatal
    "0000000403180178",               // fatal
    "0000000403190178",               // fatal
    "00000004031a0178",               // fatal
];

#[test]
fn every_client_frame_has_fixed_bytes() {
    let got: Vec<String> = client_frames().iter().map(|(_, frame)| hex(frame)).collect();
    assert_eq!(got, CLIENT, "{:?}", client_frames().iter().map(|(what, _)| what).collect::<Vec<_>>());
}

#[test]
fn every_server_frame_has_fixed_bytes() {
    let got: Vec<String> = server_frames().iter().map(|(_, frame)| hex(frame)).collect();
    assert_eq!(got, SERVER, "{:?}", server_frames().iter().map(|(what, _)| what).collect::<Vec<_>>());
}

#[test]
fn the_golden_bytes_decode_back() {
    for ((_, frame), golden) in client_frames().into_iter().zip(CLIENT) {
        assert_eq!(decode::<ClientFrame>(golden), frame);
    }
    for ((_, frame), golden) in server_frames().into_iter().zip(SERVER) {
        assert_eq!(decode::<ServerFrame>(golden), frame);
    }
}

fn decode<T: serde::de::DeserializeOwned>(golden: &str) -> T {
    let bytes: Vec<u8> =
        (0..golden.len()).step_by(2).map(|i| u8::from_str_radix(&golden[i..i + 2], 16).unwrap()).collect();
    let (frame, used) = frame::decode(&bytes, MAX_FRAME_LEN).unwrap().expect("a whole frame");
    assert_eq!(used, bytes.len());
    frame
}
