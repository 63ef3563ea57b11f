//! Property tests of the codec: every message survives encode → decode, and no byte
//! sequence makes the decoder panic.

use papo_protocol::frame::{self, FrameError, HEADER_LEN};
use papo_protocol::*;
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Username> {
    "[a-z0-9][a-z0-9_.-]{0,31}".prop_map(|raw| Username::parse(&raw).expect("valid by construction"))
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(".{0,64}").expect("regex")
}

fn chat_message() -> impl Strategy<Value = ChatMessage> {
    (any::<u64>(), name(), name(), text(), any::<i64>())
        .prop_map(|(id, from, to, body, sent_at)| ChatMessage { id, from, to, body, sent_at })
}

fn group_name() -> impl Strategy<Value = GroupName> {
    name().prop_map(|name| GroupName::parse(&format!("#{name}")).expect("valid by construction"))
}

fn group_message() -> impl Strategy<Value = GroupMessage> {
    let kind = prop_oneof![
        Just(GroupMessageKind::Text),
        Just(GroupMessageKind::Created),
        name().prop_map(|member| GroupMessageKind::Added { member }),
        Just(GroupMessageKind::Left),
        name().prop_map(|member| GroupMessageKind::Removed { member }),
        group_name().prop_map(|from| GroupMessageKind::Renamed { from }),
        name().prop_map(|to| GroupMessageKind::OwnerChanged { to }),
    ];
    (any::<u64>(), group_name(), name(), text(), any::<i64>(), kind).prop_map(
        |(id, group, from, body, sent_at, kind)| GroupMessage { id, group, from, body, sent_at, kind },
    )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![direct_request(), group_request()]
}

fn group_request() -> impl Strategy<Value = Request> {
    let names = || proptest::collection::vec(text(), 0..4);
    prop_oneof![
        (text(), names(), any::<bool>()).prop_map(|(name, members, hide_history)| Request::CreateGroup {
            name,
            members,
            hide_history
        }),
        (text(), names()).prop_map(|(group, members)| Request::AddMembers { group, members }),
        (text(), text()).prop_map(|(group, member)| Request::RemoveMember { group, member }),
        text().prop_map(|group| Request::LeaveGroup { group }),
        (text(), text()).prop_map(|(group, to)| Request::RenameGroup { group, to }),
        text().prop_map(|group| Request::DeleteGroup { group }),
        (text(), text()).prop_map(|(group, to)| Request::TransferGroup { group, to }),
        Just(Request::Groups),
        text().prop_map(|group| Request::GroupInfo { group }),
    ]
}

fn direct_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (text(), text(), proptest::option::of(text()))
            .prop_map(|(name, password, invite)| Request::Register { name, password, invite }),
        (text(), text()).prop_map(|(name, password)| Request::Login { name, password }),
        text().prop_map(|token| Request::Resume { token }),
        (text(), text(), any::<u64>()).prop_map(|(to, body, client_msg_id)| Request::Send {
            to,
            body,
            client_msg_id
        }),
        (text(), any::<Option<u64>>(), any::<u32>()).prop_map(|(with, before, limit)| Request::History {
            with,
            before,
            limit
        }),
        proptest::option::of(text()).prop_map(|after| Request::Contacts { after }),
        (text(), any::<u64>()).prop_map(|(with, up_to)| Request::MarkRead { with, up_to }),
        (text(), any::<u64>()).prop_map(|(from, up_to)| Request::Delivered { from, up_to }),
        Just(Request::Ping),
        Just(Request::Logout),
        Just(Request::LogoutEverywhere),
        (text(), proptest::option::of(text()), any::<Option<u64>>(), any::<u32>())
            .prop_map(|(query, with, before, limit)| Request::Search { query, with, before, limit }),
        text().prop_map(|to| Request::Typing { to }),
        (text(), text()).prop_map(|(old, new)| Request::ChangePassword { old, new }),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u32>(), text()).prop_map(|(protocol_version, client_name)| ClientFrame::Hello(Hello {
            protocol_version,
            client_name
        })),
        (any::<u64>(), request()).prop_map(|(id, request)| ClientFrame::Request { id, request }),
    ]
}

fn error_reply() -> impl Strategy<Value = ErrorReply> {
    let codes = vec![
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
    (proptest::sample::select(codes), text()).prop_map(|(code, message)| ErrorReply { code, message })
}

fn contact() -> impl Strategy<Value = Contact> {
    let last = proptest::option::of((any::<u64>(), name(), any::<i64>(), text()));
    (name(), any::<bool>(), any::<u64>(), last, any::<Option<i64>>(), any::<bool>()).prop_map(
        |(name, online, unread, last, last_seen, deleted)| Contact {
            name,
            online,
            unread,
            last: last.map(|(id, from, sent_at, preview)| LastMessage { id, from, sent_at, preview }),
            last_seen,
            deleted,
        },
    )
}

fn reply() -> impl Strategy<Value = Reply> {
    let page = (proptest::collection::vec(chat_message(), 0..4), any::<bool>(), any::<u64>(), any::<u64>());
    prop_oneof![
        Just(Reply::Registered),
        (name(), text(), any::<u64>()).prop_map(|(name, token, pending)| Reply::LoggedIn(LoggedIn {
            name,
            token,
            pending
        })),
        (any::<u64>(), any::<i64>()).prop_map(|(id, sent_at)| Reply::Sent { id, sent_at }),
        page.prop_map(|(messages, more, peer_delivered_up_to, peer_read_up_to)| Reply::History(
            HistoryPage { messages, more, peer_delivered_up_to, peer_read_up_to }
        )),
        (proptest::collection::vec(contact(), 0..4), proptest::option::of(name()))
            .prop_map(|(contacts, next_after)| Reply::Contacts(ContactPage { contacts, next_after })),
        Just(Reply::Done),
        Just(Reply::Pong),
        (
            proptest::collection::vec(chat_message(), 0..4),
            proptest::collection::vec(group_message(), 0..4),
            any::<Option<u64>>()
        )
            .prop_map(|(hits, group_hits, next_before)| Reply::Search(SearchPage {
                hits,
                group_hits,
                next_before
            })),
        group_reply(),
    ]
}

fn group_reply() -> impl Strategy<Value = Reply> {
    let member = (name(), any::<bool>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(name, online, joined_at, delivered_up_to, read_up_to)| GroupMember {
            name,
            online,
            joined_at,
            delivered_up_to,
            read_up_to,
        },
    );
    let info = (group_name(), name(), any::<i64>(), any::<bool>(), proptest::collection::vec(member, 0..4))
        .prop_map(|(name, owner, created_at, hide_history, members)| GroupInfo {
            name,
            owner,
            created_at,
            hide_history,
            members,
        });
    let summary = (group_name(), name(), any::<u32>(), any::<u64>(), contact()).prop_map(
        |(name, owner, members, unread, contact)| GroupSummary {
            name,
            owner,
            members,
            unread,
            last: contact.last,
        },
    );
    let page = (group_name(), proptest::collection::vec(group_message(), 0..4), any::<bool>())
        .prop_map(|(group, messages, more)| GroupHistoryPage { group, messages, more });
    prop_oneof![
        info.prop_map(Reply::Group),
        proptest::collection::vec(summary, 0..4).prop_map(Reply::Groups),
        page.prop_map(Reply::GroupHistory),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        chat_message().prop_map(Event::Message),
        (name(), any::<bool>()).prop_map(|(user, online)| Event::Presence { user, online }),
        (name(), any::<bool>(), any::<u64>()).prop_map(|(peer, read, up_to)| Event::Receipt {
            peer,
            kind: if read { ReceiptKind::Read } else { ReceiptKind::Delivered },
            up_to
        }),
        Just(Event::ShuttingDown),
        name().prop_map(|from| Event::Typing { from }),
        (name(), any::<bool>(), any::<u64>()).prop_map(|(peer, read, up_to)| Event::OwnReceipt {
            peer,
            kind: if read { ReceiptKind::Read } else { ReceiptKind::Delivered },
            up_to
        }),
        name().prop_map(|user| Event::UserRegistered { user }),
        group_message().prop_map(Event::GroupMessage),
        (group_name(), name(), any::<bool>(), any::<u64>()).prop_map(|(group, member, read, up_to)| {
            Event::GroupReceipt {
                group,
                member,
                kind: if read { ReceiptKind::Read } else { ReceiptKind::Delivered },
                up_to,
            }
        }),
        (group_name(), name()).prop_map(|(group, by)| Event::GroupRemoved { group, by }),
        (group_name(), name()).prop_map(|(group, by)| Event::GroupDeleted { group, by }),
        name().prop_map(|user| Event::UserDeleted { user }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any::<u32>(), text()).prop_map(|(protocol_version, server_version)| ServerFrame::Welcome(Welcome {
            protocol_version,
            server_version
        })),
        (any::<u64>(), prop_oneof![reply().prop_map(Ok), error_reply().prop_map(Err)])
            .prop_map(|(id, result)| ServerFrame::Reply { id, result }),
        event().prop_map(ServerFrame::Event),
        error_reply().prop_map(ServerFrame::Fatal),
    ]
}

proptest! {
    #[test]
    fn client_frames_round_trip(message in client_frame()) {
        let bytes = frame::encode(&message, MAX_FRAME_LEN).unwrap();
        let (back, used) = frame::decode::<ClientFrame>(&bytes, MAX_FRAME_LEN).unwrap().unwrap();
        prop_assert_eq!(back, message);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn server_frames_round_trip(message in server_frame()) {
        let bytes = frame::encode(&message, MAX_FRAME_LEN).unwrap();
        let (back, used) = frame::decode::<ServerFrame>(&bytes, MAX_FRAME_LEN).unwrap().unwrap();
        prop_assert_eq!(back, message);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Whatever comes back is a value, "need more bytes" or a typed error; never a panic.
        match frame::decode::<ClientFrame>(&bytes, MAX_FRAME_LEN) {
            Ok(Some((_, used))) => prop_assert!(used >= HEADER_LEN && used <= bytes.len()),
            Ok(None) | Err(FrameError::TooLarge { .. } | FrameError::Malformed(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {}", other),
        }
        let _ = frame::decode::<ServerFrame>(&bytes, MAX_FRAME_LEN);
    }

    #[test]
    fn payloads_behind_a_valid_length_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        let _ = frame::decode::<ClientFrame>(&bytes, MAX_FRAME_LEN);
        let _ = frame::decode::<ServerFrame>(&bytes, MAX_FRAME_LEN);
    }
}

/// The largest group frames the limits allow fit in one frame: a group of
/// [`MAX_GROUP_MEMBERS`] with the longest names and ids, and a user's
/// [`MAX_GROUPS_PER_USER`] groups with the longest previews the server sends (60 bytes).
#[test]
fn the_largest_group_frames_fit_a_frame() {
    let longest = |c: char| Username::parse(&c.to_string().repeat(Username::MAX_LEN)).unwrap();
    let group = GroupName::parse(&format!("#{}", longest('g'))).unwrap();
    let member = GroupMember {
        name: longest('m'),
        online: true,
        joined_at: u64::MAX,
        delivered_up_to: u64::MAX,
        read_up_to: u64::MAX,
    };
    let info = GroupInfo {
        name: group.clone(),
        owner: longest('o'),
        created_at: i64::MIN,
        hide_history: true,
        members: vec![member; MAX_GROUP_MEMBERS],
    };
    let last = LastMessage { id: u64::MAX, from: longest('f'), sent_at: i64::MIN, preview: "é".repeat(30) };
    let summary = GroupSummary {
        name: group,
        owner: longest('o'),
        members: u32::MAX,
        unread: u64::MAX,
        last: Some(last),
    };
    let members = (0..MAX_GROUP_MEMBERS).map(|_| longest('m').to_string()).collect();
    let create = Request::CreateGroup { name: format!("#{}", longest('g')), members, hide_history: true };
    for reply in [Reply::Group(info), Reply::Groups(vec![summary; MAX_GROUPS_PER_USER])] {
        let frame = ServerFrame::Reply { id: u64::MAX, result: Ok(reply) };
        assert!(frame::encode(&frame, MAX_FRAME_LEN).is_ok());
    }
    assert!(frame::encode(&ClientFrame::Request { id: u64::MAX, request: create }, MAX_FRAME_LEN).is_ok());
}
