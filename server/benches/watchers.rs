//! Many watchers (SPEC §8): the real `pmon-server` at 4 Hz, watched over its Unix socket
//! by 200 clients at once.
//!
//! ```text
//! cargo bench -p pmon-server --bench watchers
//! PMON_BENCH_WATCHERS=100 PMON_BENCH_SECONDS=20 cargo bench -p pmon-server --bench watchers
//! PMON_BENCH_FULL_DECODE=1 cargo bench -p pmon-server --bench watchers
//! PMON_BENCH_PROCESSES=1000 PMON_BENCH_ACTIVE=10 cargo bench -p pmon-server --bench watchers
//! ```
//!
//! It runs under the process mix of the other benches (`support/mix.rs`): the machine
//! is raised to `PMON_BENCH_PROCESSES` processes (default 300, a desktop's), of which
//! `PMON_BENCH_ACTIVE` % (default 10) are active each second, so the server collects
//! and scores a machine that moves. `PMON_BENCH_PROCESSES=0` leaves the machine as it is.
//!
//! The server's CPU time (utime + stime from /proc) is read over a window with no
//! watcher, then over an equal window with every watcher reading; the difference is
//! what the watchers cost it. Each watcher is its own connection and checks that it got
//! every sample of the window, in order, with no `missed` item. Latency is the time
//! from a sample's timestamp (when its collection started, so it includes collecting
//! and scoring) to its arrival at each watcher; fan-out is the time from the first
//! watcher's arrival to each other's. The watchers run in this process, on the same
//! cores as the server: on a 2-core machine they compete with it.
//!
//! Each watcher decodes only what it measures (the sequence, the kind of item and the
//! sample's time; prost skips the rest without reading it), so the figures are the
//! server's delivery, not 200 full decodes in this process taking the two cores from
//! the server. `PMON_BENCH_FULL_DECODE=1` decodes every sample whole, as `pmon watch`
//! does, for comparison.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

#[path = "support/mix.rs"]
mod mix;

use anyhow::{Context, Result, bail, ensure};
use pmon_proto::{
    endpoint::Endpoint,
    time::system_time,
    v1::{WatchSamplesRequest, watch_samples_response::Item},
};

/// What one watcher saw.
#[derive(Debug, Default)]
struct Seen {
    /// Per sample: sequence, when it was taken, when it arrived.
    samples: Vec<(u64, SystemTime, SystemTime)>,
    /// When it was told it missed samples.
    missed_at: Vec<SystemTime>,
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    std::env::var(name).map_or(Ok(default), |v| v.parse().with_context(|| format!("{name}={v} is not a number")))
}

/// CPU time (user + system) of a process so far, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("server stat")?;
    let after_comm = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat; after "pid (comm)" they are the 12th and 13th.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What a light watcher decodes of a `WatchSamplesResponse`: field numbers as in
/// `pmon.v1`; every other field is skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct Light {
    #[prost(uint64, tag = "1")]
    sequence: u64,
    #[prost(message, optional, tag = "2")]
    sample: Option<LightSample>,
}

/// Of a `Sample`, its time only.
#[derive(Clone, PartialEq, prost::Message)]
struct LightSample {
    #[prost(message, optional, tag = "2")]
    time: Option<pbjson_types::Timestamp>,
}

/// The next item: (sequence, when the sample was taken, or `None` for a `missed`).
type Next = Option<(u64, Option<SystemTime>)>;

/// The stream of one watcher, decoded whole or light.
enum Stream {
    Full(tonic::Streaming<pmon_proto::v1::WatchSamplesResponse>),
    Light(tonic::Streaming<Light>),
}

impl Stream {
    async fn open(endpoint: &Endpoint, socket: &std::path::Path, full: bool) -> Option<Stream> {
        let request = WatchSamplesRequest { after_sequence: None, server_instance: None };
        if full {
            let mut client = endpoint.connect().await.ok()?;
            return Some(Stream::Full(client.watch_samples(request).await.ok()?.into_inner()));
        }
        let channel = tonic::transport::Endpoint::from_shared(format!("unix://{}", socket.display()))
            .ok()?
            .connect()
            .await
            .ok()?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.ok()?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/pmon.v1.PauseMonitor/WatchSamples");
        let codec = tonic_prost::ProstCodec::<WatchSamplesRequest, Light>::default();
        Some(Stream::Light(grpc.server_streaming(tonic::Request::new(request), path, codec).await.ok()?.into_inner()))
    }

    async fn next(&mut self) -> Result<Next, tonic::Status> {
        let time = |t: Option<&pbjson_types::Timestamp>| t.and_then(system_time);
        Ok(match self {
            Stream::Full(s) => s.message().await?.map(|item| match item.item {
                Some(Item::Sample(sample)) => (item.sequence, time(sample.time.as_ref()).or(Some(SystemTime::now()))),
                _ => (item.sequence, None),
            }),
            Stream::Light(s) => s.message().await?.map(|item| {
                (item.sequence, item.sample.map(|sample| time(sample.time.as_ref()).unwrap_or_else(SystemTime::now)))
            }),
        })
    }
}

async fn watcher(
    (endpoint, socket, full): (Endpoint, std::path::PathBuf, bool),
    seen_by_all: Arc<Mutex<Vec<Seen>>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen = Seen::default();
    let Some(mut stream) = Stream::open(&endpoint, &socket, full).await else { return };
    let mut stop = stop;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            item = stream.next() => match item {
                Ok(Some((sequence, taken))) => {
                    let now = SystemTime::now();
                    match taken {
                        Some(taken) => seen.samples.push((sequence, taken, now)),
                        None => seen.missed_at.push(now),
                    }
                }
                _ => break,
            },
        }
    }
    seen_by_all.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(seen);
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if mix::run_child_if_asked(&args)? {
        return Ok(());
    }
    let watchers = env_number("PMON_BENCH_WATCHERS", 200)?;
    let seconds = env_number("PMON_BENCH_SECONDS", 60)?;
    let target = usize::try_from(env_number("PMON_BENCH_PROCESSES", 300)?)?;
    let active = u32::try_from(env_number("PMON_BENCH_ACTIVE", 10)?)?;
    ensure!(active <= 100, "PMON_BENCH_ACTIVE: a share of 0 to 100 %, got {active}");
    let missing = target.saturating_sub(mix::count_processes()?);
    let me = std::env::current_exe().context("the bench's own path, to start the mix")?;
    let _mix = if missing > 0 { Some(mix::Mix::start(&me, missing, active)?) } else { None };
    // Newly started children get through exec and into their rhythm.
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "load: {} processes, {active} % of the {missing} mix children active each second",
        mix::count_processes()?
    );
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[sampling]\ninterval_seconds = 0.25\nelevated_interval_seconds = 0.25\n")?;
    let data = dir.path().join("data");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_pmon-server"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("PMON_LOG", "warn")
        .spawn()
        .context("start pmon-server")?;
    let result = run(&server, &data, watchers, seconds);
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// The latency, fan-out and CPU figures of one run.
fn print_figures(
    all: &[Seen],
    watchers: u64,
    (window_start, window_end, window): (SystemTime, SystemTime, Duration),
    (idle_cpu, loaded_cpu): (Duration, Duration),
) {
    // The samples taken inside the window (the ring's replay at connection is older),
    // and each one's first arrival among all watchers.
    let inside = |taken: &SystemTime| (window_start..window_end).contains(taken);
    let mut first: HashMap<u64, SystemTime> = HashMap::new();
    for seen in all {
        for (sequence, taken, arrived) in &seen.samples {
            if inside(taken) {
                first.entry(*sequence).and_modify(|f| *f = (*f).min(*arrived)).or_insert(*arrived);
            }
        }
    }
    let (mut latency, mut fan_out, mut incomplete) = (Vec::new(), Vec::new(), 0);
    for seen in all {
        let got: Vec<_> = seen.samples.iter().filter(|(_, taken, _)| inside(taken)).collect();
        let missed = seen.missed_at.iter().any(|at| *at >= window_start);
        incomplete += u64::from(missed || got.len() != first.len());
        for (sequence, taken, arrived) in got {
            let ms = |from: &SystemTime| arrived.duration_since(*from).map_or(0.0, |d| d.as_secs_f64() * 1e3);
            latency.push(ms(taken));
            fan_out.extend(first.get(sequence).map(ms));
        }
    }
    latency.sort_by(f64::total_cmp);
    fan_out.sort_by(f64::total_cmp);
    let per_core = |cpu: Duration| cpu.as_secs_f64() / window.as_secs_f64() * 100.0;
    let extra = per_core(loaded_cpu) - per_core(idle_cpu);
    println!("samples in the window        {}", first.len());
    println!("watchers missing any sample  {incomplete} of {watchers}");
    println!(
        "latency, sample -> watcher   p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        percentile(&latency, 1.0)
    );
    println!(
        "fan-out, first -> each       p50 {:.2} ms  p99 {:.2} ms",
        percentile(&fan_out, 0.5),
        percentile(&fan_out, 0.99)
    );
    println!(
        "server CPU                   {:.2} % of one core idle, {:.2} % watched: {:.2} % extra, {:.2} % per 100 watchers",
        per_core(idle_cpu),
        per_core(loaded_cpu),
        extra,
        extra * 100.0 / watchers as f64
    );
}

fn run(server: &std::process::Child, data: &std::path::Path, watchers: u64, seconds: u64) -> Result<()> {
    let socket = data.join("daemon.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if Instant::now() > deadline {
            bail!("pmon-server did not listen within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = server.id();
    let window = Duration::from_secs(seconds);
    println!("pmon-server at 4 Hz, {watchers} watchers over the Unix socket, windows of {seconds} s");
    std::thread::sleep(Duration::from_secs(3));

    let before = cpu_time(pid)?;
    std::thread::sleep(window);
    let idle_cpu = cpu_time(pid)? - before;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let endpoint = Endpoint::local(data);
    let full = std::env::var_os("PMON_BENCH_FULL_DECODE").is_some_and(|v| v == "1");
    println!("watchers decode {}", if full { "every sample whole" } else { "the sequence and time (light)" });
    let target = (endpoint, socket, full);
    let tasks: Vec<_> =
        (0..watchers).map(|_| runtime.spawn(watcher(target.clone(), Arc::clone(&arrivals), stop_rx.clone()))).collect();
    // Every watcher connected and streaming before the window opens.
    std::thread::sleep(Duration::from_secs(3));
    let (before, window_start) = (cpu_time(pid)?, SystemTime::now());
    std::thread::sleep(window);
    let loaded_cpu = cpu_time(pid)? - before;
    let window_end = SystemTime::now();
    // Samples taken just before the end get time to arrive.
    std::thread::sleep(Duration::from_secs(1));
    stop_tx.send(true)?;
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });

    let all = std::mem::take(&mut *arrivals.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    if all.len() as u64 != watchers {
        bail!("only {} of {watchers} watchers connected and streamed", all.len());
    }
    print_figures(&all, watchers, (window_start, window_end, window), (idle_cpu, loaded_cpu));
    Ok(())
}
