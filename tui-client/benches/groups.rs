//! A group's receipts cost the same for a conversation of 100 lines as for 100,000, and so
//! does drawing it with "✓✓ 3/5 · read by 2" on every text of mine: an event moves one
//! member's watermark, and the counts are made for the lines on screen only.
//!
//! `cargo bench -p papo --bench groups`

use std::hint::black_box;

use criterion::{criterion_main, BenchmarkId, Criterion};
use papo::app::{update, view, Model, Msg};
use papo::net::{GroupCommand, Link, NetEvent};
use papo_protocol::{
    Event, GroupHistoryPage, GroupInfo, GroupMember, GroupMessage, GroupMessageKind, GroupName, GroupSummary,
    ReceiptKind, Username,
};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use time::UtcOffset;

/// Members of the group besides me: the protocol's most, less one.
const OTHERS: u64 = 499;

fn member(k: u64) -> Username {
    Username::parse(&format!("m{k}")).unwrap()
}

/// Logged in as ana with `#lab` open: `lines` texts, every other one mine, and 500 members
/// who got and read about half of them.
fn model_with(lines: u64) -> Model {
    let ana = Username::parse("ana").unwrap();
    let lab = GroupName::parse("#lab").unwrap();
    let mut model = Model::new("lab:7878".into(), UtcOffset::UTC, (120, 40), 1);
    update(&mut model, Msg::Net(NetEvent::LoggedIn { name: ana.clone(), pending: 0 }));
    update(&mut model, Msg::Net(NetEvent::Link(Link::Online)));
    let summary = GroupSummary { name: lab.clone(), owner: ana.clone(), members: 500, unread: 0, last: None };
    update(&mut model, Msg::Net(NetEvent::Groups(vec![summary])));
    update(&mut model, Msg::Key(KeyEvent::new(KeyCode::Char('1'), KeyModifiers::ALT)));
    let messages = (1..=lines)
        .rev()
        .map(|id| GroupMessage {
            id,
            group: lab.clone(),
            from: if id % 2 == 0 { ana.clone() } else { member(id % OTHERS) },
            body: format!("line {id}: some words so that long lines wrap across the pane 日本語 👋"),
            sent_at: id as i64 * 30_000,
            kind: GroupMessageKind::Text,
        })
        .collect();
    let page = GroupHistoryPage { group: lab.clone(), messages, more: false };
    update(&mut model, Msg::Net(NetEvent::GroupHistory { before: None, page }));
    let mut members: Vec<GroupMember> = (0..OTHERS)
        .map(|k| {
            let got = lines / 2 + k % 50;
            GroupMember {
                name: member(k),
                online: k % 3 == 0,
                joined_at: 1,
                delivered_up_to: got,
                read_up_to: got / 2,
            }
        })
        .collect();
    members.push(GroupMember {
        name: ana.clone(),
        online: true,
        joined_at: 1,
        delivered_up_to: lines,
        read_up_to: lines,
    });
    let info = GroupInfo { name: lab.clone(), owner: ana, created_at: 0, hide_history: false, members };
    let command = GroupCommand::Info(lab);
    update(&mut model, Msg::Net(NetEvent::Group { command, result: Ok(Some(info)) }));
    model
}

fn receipts(c: &mut Criterion) {
    let mut group = c.benchmark_group("group");
    for lines in [100, 100_000] {
        let mut model = model_with(lines);
        let lab = GroupName::parse("#lab").unwrap();
        let mut up_to = lines / 2;
        let mut k = 0;
        group.bench_function(BenchmarkId::new("receipt event, 500 members", lines), |b| {
            b.iter(|| {
                // Another member each time, a little further each round: the watermark moves.
                k = (k + 1) % OTHERS;
                up_to += u64::from(k == 0);
                let event = Event::GroupReceipt {
                    group: lab.clone(),
                    member: member(k),
                    kind: ReceiptKind::Read,
                    up_to,
                };
                update(&mut model, black_box(Msg::Net(NetEvent::Server(event))))
            })
        });
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        group.bench_with_input(BenchmarkId::new("frame 120x40, 500 members", lines), &model, |b, model| {
            b.iter(|| terminal.draw(|frame| view(black_box(model), frame)).unwrap().area)
        });
    }
    group.finish();
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::receipts);
}
criterion_main!(harness::benches);
