//! Whatever text reaches the diagnosis (log files, exception texts from the REST API) and
//! whatever names and values reach the tracker: no panic, bounded state, one-line evidence.
//! Bounded runs here (`PROPTEST_CASES` raises them; `scripts/fuzz.sh` runs longer).

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use autotune_model::diagnosis::logtext::records;
use autotune_model::diagnosis::{Catalogue, Context, Diagnoser};
use autotune_model::metrics::{MetricKind, RawMetric};
use autotune_model::text::{one_line, quoted};
use autotune_model::tracker::Tracker;

fn catalogue() -> Arc<Catalogue> {
    static CATALOGUE: OnceLock<Arc<Catalogue>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| Arc::new(Catalogue::builtin()))
        .clone()
}

/// Log-like text: real markers of Flink logs and stack traces among arbitrary bytes, so the
/// parser's states are all reached, not only "no header found".
fn log_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(
            "2026-11-28 10:00:00,000 ERROR org.apache.flink.runtime.taskmanager.Task [] - "
                .to_string()
        ),
        Just("java.lang.OutOfMemoryError: Java heap space".to_string()),
        Just("Caused by: ".to_string()),
        Just("\tat org.apache.flink.Foo.bar(Foo.java:1)".to_string()),
        Just("\t... 12 more".to_string()),
        Just("Suppressed: ".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_diagnosis_takes_any_text(text in log_text()) {
        let mut d = Diagnoser::new(catalogue());
        let mut ctx = Context::default();
        for r in records(&text) {
            d.observe_log(&r, None, &mut ctx);
        }
        prop_assert!(d.findings().len() <= autotune_model::diagnosis::findings::MAX_FINDINGS);
        for f in d.findings() {
            prop_assert!(!f.evidence.contains(['\n', '\r']), "{}", f.evidence);
            prop_assert!(f.evidence.chars().count() <= 403);
        }
    }

    #[test]
    fn names_become_one_quoted_line(name in any::<String>()) {
        let q = quoted(&name);
        prop_assert!(!q.chars().any(char::is_control), "{}", q);
        prop_assert!(q.starts_with('"') && q.ends_with('"'));
        prop_assert!(!one_line(&name).chars().any(char::is_control));
    }

    #[test]
    fn the_tracker_takes_any_identity_and_values(
        metrics in proptest::collection::vec(
            (0usize..64, proptest::collection::vec((any::<String>(), any::<String>()), 0..8),
             proptest::option::of(any::<String>()), any::<String>(), 1i32..4),
            0..40),
        rounds in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY),
                                                  Just(f64::NEG_INFINITY)], 0..80),
            0..12),
    ) {
        let mut t = Tracker::new(8);
        for (slot, vars, scope, name, kind) in &metrics {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let _ = t.register(*slot, RawMetric {
                variables: &vars,
                logical_scope: scope.as_deref(),
                name,
                kind: MetricKind::from_code(*kind).unwrap(),
            });
        }
        for (i, values) in rounds.iter().enumerate() {
            // Rows shorter or longer than the slots in use, as a confused caller would send.
            t.next_round(values.len()).copy_from_slice(values);
            t.commit_round(i as i64 * 1000);
            let _ = t.summary().to_string();
            let _ = t.pool_window();
            let _ = t.vertex_loads();
        }
        prop_assert!(t.tracked() <= metrics.len());
    }
}
