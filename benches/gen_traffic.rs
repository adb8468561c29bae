//! Writes the benchmarks' synthetic traffic to a file, for `benches/*.sh` when `stormwatch gen` is not available.
//!
//! `cargo bench --bench gen_traffic -- --out FILE [--users 100] [--duration 24h] [--seed 1]`
//! Prints `lines bytes` on stdout. Run without `--out` (as a plain `cargo bench` does) it does nothing.

mod support;

use std::io::Write;
use std::process::ExitCode;

use support::{Spec, Traffic};

/// `90`, `90s`, `15m`, `24h`, `2d` -> seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.parse::<u64>().ok().map(|n| n * scale)
}

fn main() -> ExitCode {
    let mut out = None;
    let mut spec = Spec {
        users: 100,
        seconds: 86_400,
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--out" => out = Some(value()),
            "--users" => spec.users = value().parse().unwrap_or(0),
            "--seed" => spec.seed = value().parse().unwrap_or(0),
            "--duration" => spec.seconds = parse_duration(&value()).unwrap_or(0),
            // `cargo bench` passes `--bench` and any criterion flags to every bench target: not ours to judge.
            _ => {}
        }
    }
    let Some(out) = out else {
        eprintln!("gen_traffic: no --out given, nothing to do");
        return ExitCode::SUCCESS;
    };
    if spec.users == 0 || spec.seconds == 0 {
        eprintln!("gen_traffic: --users and --duration must be positive");
        return ExitCode::from(2);
    }
    let file = match std::fs::File::create(&out) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("gen_traffic: cannot create {out}: {error}");
            return ExitCode::from(2);
        }
    };
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut traffic = Traffic::new(spec);
    let mut buffer = Vec::with_capacity(1 << 20);
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(n) = traffic.next_second(&mut buffer) {
        lines += n;
        bytes += buffer.len() as u64;
        if let Err(error) = writer.write_all(&buffer) {
            eprintln!("gen_traffic: cannot write {out}: {error}");
            return ExitCode::from(2);
        }
        buffer.clear();
    }
    if let Err(error) = writer.flush() {
        eprintln!("gen_traffic: cannot write {out}: {error}");
        return ExitCode::from(2);
    }
    println!("{lines} {bytes}");
    ExitCode::SUCCESS
}
