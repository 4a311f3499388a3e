//! How quickly a hostile mode is stopped: the time from the call to the typed
//! error, for each misbehaviour in plugins/test-components/hostile.
//!
//! Run: `cargo bench -p dashdice-tests --bench containment`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use dashdice_mode_sdk::{Action, MatchConfig};
use dashdice_runtime::{Limits, Runtime, Step};
use dashdice_tests::HOSTILE;

fn main() {
    let mode = Runtime::new(Limits::default())
        .expect("runtime")
        .load(HOSTILE)
        .expect("load");
    let config = MatchConfig {
        players: vec!["a".into(), "b".into()],
        first_player: Some("a".into()),
        options: String::new(),
    };
    let state = mode.start(&config, &[0; 32]).expect("start").outcome.state;
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut g = c.benchmark_group("contained");
    for what in ["spin", "bomb", "panic", "recurse", "huge-state", "exit"] {
        let step = Step::Apply(Action::Custom {
            name: what.into(),
            payload: String::new(),
        });
        g.bench_with_input(BenchmarkId::from_parameter(what), &step, |b, step| {
            b.iter(|| black_box(mode.act(&state, "a", step).expect_err("contained")))
        });
    }
    g.finish();
    c.final_summary();
}
