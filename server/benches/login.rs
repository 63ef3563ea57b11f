//! How long a refused login takes for a name that exists and for one that does not: equal
//! times keep replies from telling which names exist (tests/accounts.rs checks the replies
//! are equal; timing is measured here, where no parallel test run disturbs it).
//!
//! `cargo bench -p papo-server --bench login` serves over loopback TCP at bcrypt cost 8
//! (about 20 ms per login, so bcrypt dominates a round trip) and reports the two times side
//! by side.

use criterion::{criterion_main, Criterion};
use papo_protocol::ErrorCode;
use papo_server::testing::{TestServer, PASSWORD};

fn refusals(c: &mut Criterion) {
    // The tests' configuration has no rate limits, so every refusal here pays for bcrypt.
    let server = TestServer::start_with(|config| config.bcrypt_cost = 8);
    let mut client = server.connect();
    client.register("known", PASSWORD).unwrap();
    let mut group = c.benchmark_group("refused login");
    for name in ["known", "unknown-name"] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let refused = client.login(name, "wrong password").unwrap_err();
                assert_eq!(refused.code(), Some(ErrorCode::InvalidCredentials));
            });
        });
    }
    group.finish();
}

// criterion's macros generate undocumented items.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = criterion::Criterion::default().measurement_time(std::time::Duration::from_secs(5));
        targets = super::refusals
    }
}
criterion_main!(harness::benches);
