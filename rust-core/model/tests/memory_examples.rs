//! Worked examples of the memory-pool model, including the published examples of Flink's
//! autoscaler memory tuning (flink-kubernetes-operator, `MemoryTuningTest`).

use autotune_model::codes::Code;
use autotune_model::memory::*;
use autotune_model::scaling::{Edge, ShipStrategy};

const GIB: u64 = 1024 * MIB;

/// The layout Flink derives from `taskmanager.memory.process.size` alone, with its defaults.
fn flink_layout(process: u64) -> MemoryLayout {
    let overhead = ((process as f64 * 0.1) as u64).clamp(192 * MIB, GIB);
    let metaspace = 256 * MIB;
    let flink = process - overhead - metaspace;
    let network = ((flink as f64 * 0.1) as u64).clamp(64 * MIB, GIB);
    let managed = (flink as f64 * 0.4) as u64;
    let (framework_heap, framework_off_heap) = (128 * MIB, 128 * MIB);
    MemoryLayout {
        framework_heap,
        task_heap: flink - network - managed - framework_heap - framework_off_heap,
        framework_off_heap,
        task_off_heap: 0,
        network,
        managed,
        metaspace,
        overhead,
    }
}

fn window() -> PoolWindow {
    PoolWindow {
        window_seconds: 60.0,
        samples: 12,
        ..PoolWindow::default()
    }
}

fn key<'a>(keys: &'a [(&'static str, String)], name: &str) -> &'a str {
    &keys.iter().find(|(k, _)| *k == name).unwrap().1
}

fn parse_m(v: &str) -> u64 {
    v.strip_suffix('m').unwrap().parse::<u64>().unwrap() * MIB
}

#[test]
fn flink_derives_the_documented_default_layout() {
    // flink-conf.yaml's default 1728m: the numbers every TaskManager log prints.
    let l = flink_layout(1728 * MIB);
    assert_eq!(
        (l.task_heap, l.managed, l.network, l.metaspace, l.overhead),
        (384 * MIB, 512 * MIB, 128 * MIB, 256 * MIB, 192 * MIB)
    );
    assert_eq!(l.process_total(), 1728 * MIB);
}

#[test]
fn autoscaler_network_segments_per_gate() {
    // MemoryTuningTest.testCalculateNetworkSegmentNumber: 2 buffers per channel, 8 floating.
    let net = NetworkSettings::default();
    assert_eq!(gate_segments(10, 10, ShipStrategy::Forward, &net), 10);
    assert_eq!(
        gate_segments(10, 15, ShipStrategy::Forward, &net),
        12,
        "forward becomes rescale"
    );
    assert_eq!(gate_segments(10, 15, ShipStrategy::Rescale, &net), 12);
    assert_eq!(gate_segments(10, 15, ShipStrategy::Rebalance, &net), 38);
    assert_eq!(gate_segments(10, 15, ShipStrategy::Other, &net), 38);
}

#[test]
fn autoscaler_network_memory_for_the_rescaled_job() {
    // MemoryTuningTest.testMemoryTuning: two vertices joined by REBALANCE, rescaled from
    // 50/50 to 25/10, 5 slots per TaskManager: network min = max = 13760 kb.
    let edges = [Edge {
        from: 0,
        to: 1,
        ship: ShipStrategy::Rebalance,
    }];
    let net = NetworkSettings::default();
    assert_eq!(network_segments_per_slot(&[25, 10], &edges, &net), 28 + 58);
    assert_eq!(
        network_bytes_per_taskmanager(&[25, 10], &edges, &net, 5),
        13760 * 1024
    );
}

#[test]
fn autoscaler_margin_on_measured_usage() {
    // Same test: 100 MiB metaspace used and 20% overhead give 120 mb; 5096 MiB heap gives
    // the heap the test budgets.
    assert_eq!(with_margin((100 * MIB) as f64, 0.2), 120 * MIB);
    assert_eq!(with_margin((5096 * MIB) as f64, 0.2), 6_412_251_955);
}

#[test]
fn over_provisioned_taskmanager_saves_memory_with_consistent_keys() {
    // A 4 GB TaskManager running a small job on the heap state backend.
    let current = flink_layout(4096 * MIB);
    let w = PoolWindow {
        heap_max: Some(current.jvm_heap() as f64),
        heap_used_peak: Some(900.0 * MIB as f64),
        heap_after_gc_peak: Some(70.0 * MIB as f64),
        gc_ms_per_s: Some(2.0),
        metaspace_used_peak: Some(80.0 * MIB as f64),
        metaspace_max: Some(current.metaspace as f64),
        direct_used_peak: Some(current.network as f64 + 8.0 * MIB as f64),
        managed_used_peak: Some(0.0),
        managed_total: Some(current.managed as f64),
        network_used_peak: Some(2.0 * MIB as f64),
        network_total: Some(current.network as f64),
        ..window()
    };
    let edges = [Edge {
        from: 0,
        to: 1,
        ship: ShipStrategy::Hash,
    }];
    let net = NetworkSettings::default();
    let inputs = MemoryInputs {
        current,
        slots_per_taskmanager: 2,
        windows: &[w.clone(), w],
        network_now: network_bytes_per_taskmanager(&[1, 2], &edges, &net, 2),
        network_recommended: None,
    };
    let plan = plan(&inputs, &MemorySettings::default()).unwrap();
    let r = plan.recommended;
    assert!(plan.saving() >= 0.3, "saves {:.0}%", plan.saving() * 100.0);
    assert_eq!(r.managed, 0, "nothing used managed memory");
    assert!(plan.findings.iter().any(|f| f.code == Code::ManagedUnused));
    // JVM heap: live 70m -> at least 70m + 256m, rounded up to 16m.
    assert_eq!(r.jvm_heap(), 336 * MIB);
    assert_eq!(r.metaspace, 112 * MIB, "80m + 32m");
    assert_eq!(r.overhead, 192 * MIB);
    // The graph needs (2x2+8 + 1x2+8) segments x 2 slots x 32k = 1.375m; 2m were in use.
    assert_eq!(r.network, 2 * MIB);
    // Keys: totals are the sums of the pools, so Flink derives exactly this layout.
    let keys = plan.config_keys();
    let pools: u64 = [
        "taskmanager.memory.framework.heap.size",
        "taskmanager.memory.task.heap.size",
        "taskmanager.memory.framework.off-heap.size",
        "taskmanager.memory.task.off-heap.size",
        "taskmanager.memory.managed.size",
        "taskmanager.memory.network.max",
    ]
    .iter()
    .map(|k| parse_m(key(&keys, k)))
    .sum();
    assert_eq!(pools, parse_m(key(&keys, "taskmanager.memory.flink.size")));
    assert_eq!(
        pools
            + parse_m(key(&keys, "taskmanager.memory.jvm-metaspace.size"))
            + parse_m(key(&keys, "taskmanager.memory.jvm-overhead.max")),
        parse_m(key(&keys, "taskmanager.memory.process.size"))
    );
    let lines = plan.log_lines("job=\"j\" (1)");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("AUTOTUNE AT200 MEMORY_PLAN job=\"j\" (1) taskmanagers=2 process=4.00g->"),
        "{lines:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("AT201 MEMORY_POOL") && l.contains("pool=heap")));
}

#[test]
fn heap_pressure_asks_for_more_heap() {
    let current = flink_layout(1024 * MIB);
    let max = current.jvm_heap() as f64;
    let w = PoolWindow {
        heap_max: Some(max),
        heap_used_peak: Some(max),
        heap_after_gc_peak: Some(0.97 * max),
        gc_ms_per_s: Some(450.0),
        ..window()
    };
    let findings = taskmanager_findings(&w, &MemorySettings::default());
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].code, Code::HeapPressure);
    let plan = plan(
        &MemoryInputs {
            current,
            slots_per_taskmanager: 1,
            windows: &[w],
            network_now: 0,
            network_recommended: None,
        },
        &MemorySettings::default(),
    )
    .unwrap();
    assert!(plan.findings.iter().any(|f| f.code == Code::HeapPressure));
    assert!(
        plan.recommended.jvm_heap() as f64 >= 1.5 * max,
        "{} vs {}",
        plan.recommended.jvm_heap(),
        max
    );
    assert!(
        plan.saving() < 0.0,
        "an under-provisioned TaskManager needs more memory"
    );
}

#[test]
fn managed_memory_is_kept_when_rocksdb_reserves_it_and_sized_when_partly_used() {
    let current = flink_layout(4096 * MIB);
    let mk = |used: f64| PoolWindow {
        managed_used_peak: Some(used),
        managed_total: Some(current.managed as f64),
        ..window()
    };
    let run = |w: PoolWindow| {
        plan(
            &MemoryInputs {
                current,
                slots_per_taskmanager: 1,
                windows: &[w],
                network_now: 0,
                network_recommended: None,
            },
            &MemorySettings::default(),
        )
        .unwrap()
        .recommended
        .managed
    };
    assert_eq!(
        run(mk(current.managed as f64)),
        current.managed.div_ceil(MIB) * MIB,
        "kept, whole mebibytes"
    );
    assert_eq!(
        run(mk(100.0 * MIB as f64)),
        128 * MIB,
        "100m + 20% -> 120m -> 128m"
    );
    assert_eq!(run(mk(0.0)), 0);
}

#[test]
fn a_parallelism_increase_brings_its_network_memory() {
    let mut current = flink_layout(1024 * MIB);
    current.network = MIB;
    let edges = [
        Edge {
            from: 0,
            to: 1,
            ship: ShipStrategy::Rebalance,
        },
        Edge {
            from: 1,
            to: 2,
            ship: ShipStrategy::Hash,
        },
    ];
    let net = NetworkSettings::default();
    let now = network_bytes_per_taskmanager(&[1, 1, 1], &edges, &net, 4);
    let wider = network_bytes_per_taskmanager(&[1, 4, 4], &edges, &net, 4);
    assert!(wider > now);
    let plan = plan(
        &MemoryInputs {
            current,
            slots_per_taskmanager: 4,
            windows: &[window()],
            network_now: now,
            network_recommended: Some(wider),
        },
        &MemorySettings::default(),
    )
    .unwrap();
    assert!(plan.recommended.network >= wider);
    let finding = plan
        .findings
        .iter()
        .find(|f| f.code == Code::NetworkForParallelism)
        .unwrap();
    assert!(
        finding
            .message
            .contains("Insufficient number of network buffers"),
        "{}",
        finding.message
    );
}

#[test]
fn never_below_the_measured_need_plus_margin() {
    // Random layouts and windows: every pool at least covers what was measured.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = |lo: f64, hi: f64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + (seed % 10_000) as f64 / 10_000.0 * (hi - lo)
    };
    let settings = MemorySettings::default();
    for _ in 0..500 {
        let current = flink_layout((rand(1.0, 32.0) * 1024.0) as u64 * MIB);
        let heap_max = current.jvm_heap() as f64;
        let w = PoolWindow {
            heap_max: Some(heap_max),
            heap_used_peak: Some(rand(0.2, 1.0) * heap_max),
            heap_after_gc_peak: Some(rand(0.01, 1.0) * heap_max),
            gc_ms_per_s: Some(rand(0.0, 400.0)),
            metaspace_used_peak: Some(rand(0.1, 1.0) * current.metaspace as f64),
            metaspace_max: Some(current.metaspace as f64),
            managed_used_peak: Some(rand(0.0, 1.0) * current.managed as f64),
            managed_total: Some(current.managed as f64),
            direct_used_peak: Some(rand(0.5, 1.0) * current.direct_limit() as f64),
            network_total: Some(current.network as f64),
            ..window()
        };
        let need = (rand(0.0, 2.0) * current.network as f64) as u64;
        let p = plan(
            &MemoryInputs {
                current,
                slots_per_taskmanager: 2,
                windows: std::slice::from_ref(&w),
                network_now: need / 2,
                network_recommended: Some(need),
            },
            &settings,
        )
        .unwrap();
        let r = p.recommended;
        let m = 1.0 + settings.margin;
        assert!(r.jvm_heap() as f64 >= w.heap_after_gc_peak.unwrap() * m);
        assert!(r.metaspace as f64 >= w.metaspace_used_peak.unwrap() * m);
        let used = w.managed_used_peak.unwrap();
        assert!(used == 0.0 || r.managed as f64 >= (used * m).min(current.managed as f64));
        assert!(r.network >= need);
        let outside = w.direct_used_peak.unwrap() - current.network as f64;
        assert!((r.framework_off_heap + r.task_off_heap) as f64 >= outside * m - 1.0);
        assert_eq!(
            r.process_total(),
            r.flink_total() + r.metaspace + r.overhead
        );
        assert_eq!(r.process_total() % MIB, 0, "whole mebibytes");
    }
}
