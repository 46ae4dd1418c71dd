use std::time::{Duration, SystemTime};

use pmon_proto::{
    config::{Ramp, Stress},
    v1::{Pressure, ProcessFactors, ProcessState, SchedPolicy, StressFactor, SystemFigures, ThermalPressure},
};

use super::{Contention, Measured, assess};
use crate::collect::{ProcessRecord, Scheduling, Usage};

const WINDOW: Duration = Duration::from_secs(3);

fn at(secs: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_secs_f64(secs)
}

/// A process that ran `cpu` and waited `waited` seconds over the last second.
fn process(pid: u32, cpu: f64, waited: Option<f64>, policy: SchedPolicy) -> ProcessRecord {
    let mut usage = Usage::of_cpu(Duration::from_secs(1), cpu * 100.0).expect("a usage");
    usage.run_delay = waited.map(Duration::from_secs_f64);
    ProcessRecord {
        pid,
        command: format!("p{pid}"),
        state: ProcessState::Running,
        factors: ProcessFactors::default(),
        ppid: Some(1),
        scheduling: Some(Scheduling { policy, rt_priority: 0, nice: Some(0) }),
        kernel_thread: false,
        usage: Some(usage),
    }
}

fn psi(some_secs: f64, full_secs: Option<f64>) -> Option<Pressure> {
    let micros = |s: f64| (s * 1e6) as u64;
    Some(Pressure {
        some_total_micros: micros(some_secs),
        full_total_micros: full_secs.map(micros),
        ..Default::default()
    })
}

fn value(measured: &[Measured], factor: StressFactor) -> Option<f64> {
    measured.iter().find(|m| m.factor == factor).map(|m| m.value)
}

#[test]
fn run_delay_over_the_window_is_the_tasks_waiting_for_each_cpu() {
    let mut c = Contention::new();
    let system = SystemFigures::default();
    // 48 busy children on 2 CPUs: each ran 1/24 of a second and waited the rest.
    let storm: Vec<_> = (0..48).map(|pid| process(pid, 2.0 / 48.0, Some(46.0 / 48.0), SchedPolicy::Normal)).collect();
    assert_eq!(value(&c.measure(at(0.0), &storm, &system, 2, WINDOW), StressFactor::CpuWait), None, "no window yet");
    let mut last = vec![];
    for s in 1..=5 {
        last = c.measure(at(f64::from(s)), &storm, &system, 2, WINDOW);
    }
    let waiting = value(&last, StressFactor::CpuWait).expect("measured");
    assert!((waiting - 23.0).abs() < 1e-6, "{waiting}");
    let machine = assess(last, &Stress::default());
    assert_eq!(machine.score, 60.0, "cpu waiting alone stops at its weight: ELEVATED, never CRITICAL");
    assert!(
        machine.reason.starts_with("cpu: 23.0 tasks waited for each CPU over the last 3.0 s"),
        "{}",
        machine.reason
    );
}

#[test]
fn real_time_cpu_counts_only_while_ordinary_tasks_waited() {
    let system = SystemFigures::default();
    let mut alone = Contention::new();
    let mut starving = Contention::new();
    let rt_alone = [process(1, 0.98, Some(0.0), SchedPolicy::Fifo), process(2, 0.3, Some(0.0), SchedPolicy::Normal)];
    let rt_starving =
        [process(1, 0.98, Some(0.0), SchedPolicy::Fifo), process(2, 0.05, Some(0.95), SchedPolicy::Normal)];
    let (mut a, mut b) = (vec![], vec![]);
    for s in 0..=3 {
        a = alone.measure(at(f64::from(s)), &rt_alone, &system, 2, WINDOW);
        b = starving.measure(at(f64::from(s)), &rt_starving, &system, 2, WINDOW);
    }
    assert_eq!(value(&a, StressFactor::Realtime), Some(0.0), "nobody waited for it");
    let taken = value(&b, StressFactor::Realtime).expect("measured");
    assert!((taken - 0.475).abs() < 1e-6, "the share of the 2 CPUs it took from the one that waited: {taken}");
    let machine = assess(b, &Stress::default());
    assert_eq!(machine.score, 100.0);
    assert_eq!(machine.factors[0].factor(), StressFactor::Realtime);
    // The same on 64 CPUs is one core of many: a few points, not CRITICAL.
    let mut big = Contention::new();
    let mut m = vec![];
    for s in 0..=3 {
        m = big.measure(at(f64::from(s)), &rt_starving, &system, 64, WINDOW);
    }
    let share = value(&m, StressFactor::Realtime).expect("measured");
    assert!((share - 0.95 / 64.0).abs() < 1e-9, "{share}");
    assert!(assess(m, &Stress::default()).score < 5.0);
}

#[test]
fn psi_shares_come_from_the_totals_over_the_window_not_the_ten_second_average() {
    let mut c = Contention::new();
    let figures = |io: f64, mem: f64| SystemFigures {
        io_pressure: psi(io, Some(io)),
        memory_pressure: psi(mem, Some(mem / 2.0)),
        ..Default::default()
    };
    c.measure(at(0.0), &[], &figures(100.0, 50.0), 2, WINDOW);
    c.measure(at(1.0), &[], &figures(100.7, 50.1), 2, WINDOW);
    c.measure(at(2.0), &[], &figures(101.4, 50.2), 2, WINDOW);
    let m = c.measure(at(3.0), &[], &figures(102.1, 50.3), 2, WINDOW);
    assert!((value(&m, StressFactor::IoSome).expect("io") - 70.0).abs() < 1e-6);
    assert!((value(&m, StressFactor::MemorySome).expect("memory") - 10.0).abs() < 1e-6);
    assert!((value(&m, StressFactor::MemoryFull).expect("memory full") - 5.0).abs() < 1e-6);
    // The window moves on: the next share is over the last 3 s only.
    let m = c.measure(at(4.0), &[], &figures(102.1, 50.3), 2, WINDOW);
    assert!((value(&m, StressFactor::IoSome).expect("io") - 140.0 / 3.0).abs() < 1e-6);
    assert_eq!(value(&m, StressFactor::CpuWait), None, "no run delay and no load: unavailable, not zero");
    let machine = assess(m, &Stress::default());
    assert!(machine.reason.starts_with("io: some task waited on I/O 47% of the last 3.0 s"), "{}", machine.reason);
}

#[test]
fn levels_and_the_load_fallback_where_there_is_no_run_delay() {
    let mut c = Contention::new();
    let system = SystemFigures {
        load_1m: Some(9.0),
        mem_total_bytes: Some(16 << 30),
        mem_available_bytes: Some(16 << 30 >> 5),
        pageins_per_sec: Some(500.0),
        swapouts_per_sec: Some(300.0),
        thermal_pressure: ThermalPressure::Heavy as i32,
        ..Default::default()
    };
    c.measure(at(0.0), &[], &system, 2, WINDOW);
    let m = c.measure(at(1.0), &[], &system, 2, WINDOW);
    assert_eq!(value(&m, StressFactor::CpuWait), Some(3.5), "load 9 on 2 CPUs: 3.5 waiting for each");
    assert_eq!(value(&m, StressFactor::MemoryAvailable), Some(100.0 / 32.0));
    assert_eq!(value(&m, StressFactor::Pageins), Some(500.0));
    assert_eq!(value(&m, StressFactor::Swap), Some(300.0));
    assert_eq!(value(&m, StressFactor::Thermal), Some(2.0));
    let machine = assess(m, &Stress::default());
    // Available memory at 3.1 % leads, (10 − 3.125) / 10 of 100 points; half of heavy
    // heat (66.7) and of the load (60) come on top: capped at 100.
    assert_eq!(machine.score, 100.0);
    assert_eq!(machine.factors[0].factor(), StressFactor::MemoryAvailable);
    assert!((machine.factors[0].points - 68.75).abs() < 1e-9, "{:?}", machine.factors[0]);
    assert_eq!(
        machine.reason, "memory: 3.1% of memory available (512 MiB); and thermal: thermal pressure heavy",
        "the two leading kinds"
    );
    let points: Vec<f64> = machine.factors.iter().map(|f| f.points).collect();
    assert!(points.windows(2).all(|w| w[0] >= w[1]), "most points first: {points:?}");
}

#[test]
fn a_clock_that_steps_back_starts_the_window_again() {
    let mut c = Contention::new();
    let busy = [process(1, 1.0, Some(1.0), SchedPolicy::Normal)];
    c.measure(at(10.0), &busy, &SystemFigures::default(), 1, WINDOW);
    let m = c.measure(at(5.0), &busy, &SystemFigures::default(), 1, WINDOW);
    assert_eq!(value(&m, StressFactor::CpuWait), None);
    let m = c.measure(at(6.0), &busy, &SystemFigures::default(), 1, WINDOW);
    assert_eq!(value(&m, StressFactor::CpuWait), Some(1.0));
}

#[test]
fn a_ramp_rises_either_way_and_stops_at_its_weight() {
    let up = Ramp::new(60.0, 0.0, 2.4);
    assert_eq!((up.points(0.0), up.points(1.2), up.points(9.0)), (0.0, 30.0, 60.0));
    let down = Ramp::new(100.0, 10.0, 0.0);
    assert_eq!((down.points(50.0), down.points(5.0), down.points(0.0)), (0.0, 50.0, 100.0));
    assert_eq!(up.points(f64::NAN), 0.0);
    let idle = assess(vec![], &Stress::default());
    assert_eq!((idle.score, idle.reason.as_str()), (0.0, ""));
}

#[test]
fn a_kind_counts_by_its_leading_factor_and_each_other_kind_adds_half() {
    let measured = |factors: &[(StressFactor, f64)]| -> Vec<Measured> {
        factors.iter().map(|&(factor, value)| Measured { factor, value, detail: format!("{value}") }).collect()
    };
    let config = Stress::default();
    // A swap thrash: every memory factor high at once, and I/O.
    let thrash = assess(
        measured(&[
            (StressFactor::MemorySome, 28.0),
            (StressFactor::MemoryFull, 28.0),
            (StressFactor::Pageins, 6000.0),
            (StressFactor::Swap, 6000.0),
            (StressFactor::IoSome, 48.0),
        ]),
        &config,
    );
    let memory = 100.0 * 23.0 / 35.0;
    assert!((thrash.score - (memory + 0.5 * 48.0)).abs() < 1e-9, "{}", thrash.score);
    assert_eq!(thrash.reason, "memory: 28; and io: 48");
    // An fsync flood on a quiet machine: I/O alone, its memory stall below memory_full's start.
    let flood = assess(measured(&[(StressFactor::IoSome, 70.0), (StressFactor::MemoryFull, 4.0)]), &config);
    assert_eq!(flood.score, 60.0);
    assert_eq!(flood.reason, "io: 70");
    // A second kind that weighs little adds its points but is not named.
    let storm = assess(measured(&[(StressFactor::CpuWait, 23.0), (StressFactor::IoSome, 0.4)]), &config);
    assert!((storm.score - 60.2).abs() < 1e-9, "{}", storm.score);
    assert_eq!(storm.reason, "cpu: 23");
    // others_share 0: the leading kind alone.
    let alone = Stress { others_share: 0.0, ..Stress::default() };
    let thrash = assess(measured(&[(StressFactor::MemoryFull, 40.0), (StressFactor::IoSome, 60.0)]), &alone);
    assert_eq!(thrash.score, 100.0);
    let both = assess(measured(&[(StressFactor::CpuWait, 1.2), (StressFactor::IoSome, 30.0)]), &alone);
    assert_eq!(both.score, 30.0);
}
