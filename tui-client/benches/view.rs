//! Drawing a frame costs the same for a conversation of 100 messages as for 100,000:
//! `view` lays out only what fits on the screen.
//!
//! `cargo bench -p papo --bench view`

use std::hint::black_box;

use criterion::{criterion_main, BenchmarkId, Criterion};
use papo::app::{update, view, Model, Msg};
use papo::net::NetEvent;
use papo_protocol::{ChatMessage, Contact, HistoryPage, Username};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use time::UtcOffset;

fn model_with(messages: u64) -> Model {
    let (ana, bia) = (Username::parse("ana").unwrap(), Username::parse("bia").unwrap());
    let mut model = Model::new("lab:7878".into(), UtcOffset::UTC, (120, 40), 1);
    update(&mut model, Msg::Net(NetEvent::LoggedIn { name: ana.clone(), pending: 0 }));
    let contact =
        Contact { name: bia.clone(), online: true, unread: 0, last: None, last_seen: None, deleted: false };
    update(&mut model, Msg::Net(NetEvent::Contacts(vec![contact])));
    update(&mut model, Msg::Key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL)));
    let page = HistoryPage {
        messages: (1..=messages)
            .rev()
            .map(|id| {
                let (from, to) = if id % 2 == 0 { (&ana, &bia) } else { (&bia, &ana) };
                let body =
                    format!("message {id}: some words so that long lines wrap across the pane 日本語 👋");
                ChatMessage { id, from: from.clone(), to: to.clone(), body, sent_at: id as i64 * 30_000 }
            })
            .collect(),
        more: false,
        peer_delivered_up_to: messages / 2,
        peer_read_up_to: messages / 3,
    };
    update(&mut model, Msg::Net(NetEvent::History { with: bia, before: None, page }));
    model
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("view");
    for messages in [100, 100_000] {
        let model = model_with(messages);
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        group.bench_with_input(BenchmarkId::new("chat frame 120x40", messages), &model, |b, model| {
            b.iter(|| terminal.draw(|frame| view(black_box(model), frame)).unwrap().area)
        });
    }
    group.finish();
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::render);
}
criterion_main!(harness::benches);
