//! Modbus acquisition figures, run with `cargo bench --bench modbus [-- SECS]`:
//!
//! (a) 50 simulated devices × 200 scattered registers, polled every second: CPU %, RSS
//!     and poll-start jitter (p50/p99) of the polling process, and requests per cycle.
//! (b) Requests per second against one local server through forewarn's request path
//!     (bounded read, decode into samples, exception and split handling), compared in
//!     the same run with a bare tokio-modbus loop issuing the same requests: the limit.
//!
//! The simulated devices (tokio-modbus servers) run in a child process, so the figures
//! are those of the poller alone. Under `cargo test` the binary exits at once.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use forewarn::config::{Config, RegisterKind};
use forewarn::demo::modbus_server::{serve, RegisterBank};
use forewarn::source::modbus::bus::Outcome;
use forewarn::source::modbus::{plan_buses, reading, spawn};
use forewarn::stats::{DeviceStats, Histogram};
use tokio_modbus::client::Reader;

const REGISTERS: u16 = 200;
const STRIDE: u16 = 3;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
        return serve_devices(n);
    }
    // `cargo test --all-targets` runs this binary too: it has nothing to test.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let secs: u64 = args.iter().filter_map(|a| a.parse().ok()).next().unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(fleet(50, Duration::from_secs(secs)));
    rt.block_on(throughput(Duration::from_millis(500), 15));
}

/// Child process: `n` devices on free ports, each with every third register of 0..600
/// mapped; prints the ports on one line and serves until stdin closes.
fn serve_devices(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut ports = Vec::new();
        for _ in 0..n {
            let bank = RegisterBank::default();
            let words: Vec<u16> = (0..REGISTERS * STRIDE).collect();
            bank.set(RegisterKind::Holding, 0, &words);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            ports.push(listener.local_addr().expect("addr").port().to_string());
            tokio::spawn(serve(listener, bank));
        }
        println!("{}", ports.join(" "));
        std::io::stdout().flush().ok();
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await
        .ok();
    });
}

struct Devices {
    child: std::process::Child,
    ports: Vec<u16>,
}

impl Devices {
    fn start(n: usize) -> Devices {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["serve", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the simulated devices");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ports");
        let ports = line.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        Devices { child, ports }
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(ports: &[u16], interval: &str) -> Config {
    let mut text = String::from("[agent]\nid = \"bench\"\n[upstream]\nbroker = \"mqtt://127.0.0.1:1\"\n");
    for (d, port) in ports.iter().enumerate() {
        text += &format!(
            "[[modbus]]\ndevice = \"d{d}\"\naddress = \"127.0.0.1:{port}\"\ninterval = \"{interval}\"\ntimeout = \"1s\"\n"
        );
        for r in 0..REGISTERS {
            text += &format!(
                "[[modbus.register]]\nsensor = \"d{d}.r{r}\"\nkind = \"holding\"\naddress = {}\ntype = \"u16\"\n",
                r * STRIDE
            );
        }
    }
    Config::parse(&text, std::path::Path::new("bench.toml")).expect("bench config")
}

/// CPU time (user + system) of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn fleet(n: usize, run_for: Duration) {
    let devices = Devices::start(n);
    let config = config(&devices.ports, "1s");
    let stats: Vec<Arc<DeviceStats>> = (0..n).map(|_| Arc::default()).collect();
    let mut next_id = 0u32;
    let ids: std::collections::HashMap<String, u32> = config
        .modbus_sensors()
        .map(|s| {
            next_id += 1;
            (s.to_string(), next_id)
        })
        .collect();
    let buses = plan_buses(&config.modbus, &|s| ids[s], &|d| {
        stats[d.trim_start_matches('d').parse::<usize>().unwrap_or(0)].clone()
    });
    let per_cycle: usize = buses.iter().map(|b| b.bus.units[0].groups[0].requests.len()).sum();
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = spawn(buses, &tx, &stop_rx);
    drop(tx);
    let drain = tokio::spawn(async move {
        let (mut samples, mut bad) = (0u64, 0u64);
        while let Some(batch) = rx.recv().await {
            samples += batch.samples.len() as u64;
            bad += batch.samples.iter().filter(|s| !s.quality.is_good()).count() as u64;
        }
        (samples, bad)
    });
    // Let every device connect and settle into its schedule before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lateness_before: Vec<u64> = stats.iter().map(|s| s.lateness.count()).collect();
    let (cpu0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(run_for).await;
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    let rss = rss_kib();
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let (samples, bad) = drain.await.unwrap_or_default();
    let all = Histogram::default();
    stats.iter().for_each(|s| all.merge(&s.lateness));
    let polls: u64 = stats.iter().map(|s| s.lateness.count()).sum::<u64>() - lateness_before.iter().sum::<u64>();
    let missed: u64 = stats.iter().map(|s| s.missed_deadlines.get()).sum();
    let q = |p| {
        all.quantile(p)
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
            .unwrap_or_default()
    };
    println!("(a) {n} devices x {REGISTERS} registers every 1 s, measured over {wall:.1?}:");
    println!(
        "    requests per cycle: {per_cycle} ({} per device)",
        per_cycle / n.max(1)
    );
    println!(
        "    CPU {:.1} % of one core, RSS {:.1} MiB (poller process; devices run in a child)",
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        rss as f64 / 1024.0
    );
    println!(
        "    poll start jitter p50 {} p99 {} (upper bucket edges, 100 us buckets); polls {polls}, missed deadlines {missed}",
        q(0.5),
        q(0.99)
    );
    println!("    samples {samples}, bad {bad}");
}

async fn throughput(each: Duration, rounds: usize) {
    let devices = Devices::start(1);
    let config = config(&devices.ports, "1s");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", devices.ports[0]).parse().expect("addr");
    let mut planned = plan_buses(&config.modbus, &|_| 0, &|_| Arc::default());
    let mut bus = planned.remove(0).bus;
    let requests: Vec<(u16, u16)> = bus.units[0].groups[0]
        .requests
        .iter()
        .map(|r| (r.start, r.count))
        .collect();
    // Short alternating rounds, so both loops see the same load on a shared machine.
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        // The bare loop: connect once, issue the same requests back to back.
        let mut ctx = tokio_modbus::client::tcp::connect(addr).await.expect("connect");
        let (t0, mut n) = (Instant::now(), 0u64);
        while t0.elapsed() < each {
            for &(start, count) in &requests {
                let words = ctx.read_holding_registers(start, count).await;
                assert!(matches!(words, Ok(Ok(_))));
                n += 1;
            }
        }
        bare.push(n as f64 / t0.elapsed().as_secs_f64());
        drop(ctx);

        let (t0, mut n) = (Instant::now(), 0u64);
        let mut samples = Vec::with_capacity(usize::from(REGISTERS));
        while t0.elapsed() < each {
            samples.clear();
            let mut sink = |r: &_, ts, outcome: Outcome<'_>| {
                n += 1;
                match outcome {
                    Outcome::Data(d) => reading::decode_fields(r, d, ts, &mut samples),
                    Outcome::Failed(q) => reading::mark_bad(std::iter::once(r), ts, q, &mut samples),
                }
            };
            bus.poll_group(0, 0, false, &mut sink).await;
            assert!(samples.iter().all(|s| s.quality.is_good()));
        }
        ours.push(n as f64 / t0.elapsed().as_secs_f64());
    }
    bus.close().await;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ratios: Vec<f64> = ours.iter().zip(&bare).map(|(o, b)| o / b).collect();
    let ratio = median(&mut ratios);
    let (ours, bare) = (median(&mut ours), median(&mut bare));
    println!(
        "(b) one local server, {} requests of up to 125 registers, {rounds} alternating rounds of {each:?}:",
        requests.len()
    );
    println!(
        "    forewarn {ours:.0} req/s, bare tokio-modbus loop {bare:.0} req/s (medians); median ratio {:.1} % of the bare loop",
        ratio * 100.0
    );
}
