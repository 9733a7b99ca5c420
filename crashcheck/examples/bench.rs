//! Times the checker on a long synthetic trace over a 64 MiB image:
//! `cargo run --release -p crashcheck --example bench -- [OPS] [FILES]`.

use std::time::Instant;

use crashcheck::synth::{mark_mounted, Faults, Synth};
use crashcheck::{trace, Config};
use layout::inode::{S_IFDIR, S_IFREG};
use layout::Timespec;
use novars_mkfs::{Attrs, Builder, Options};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let ops: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let files: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut img = vec![0u8; 64 << 20];
    let mut o = Options::defaults((img.len() / 4096) as u64, 2);
    o.seg_inodes = 2048;
    let mut b = Builder::format(&mut img, o).map_err(|e| e.to_string())?;
    let t = Timespec::new(0, 0);
    let r = b.root();
    for d in 0..4 {
        let dir = b
            .mkdir(r, format!("d{d}").as_bytes(), Attrs::new(S_IFDIR | 0o755, 0, 0, t))
            .map_err(|e| e.to_string())?;
        for f in 0..files / 4 {
            b.add_file(
                dir,
                format!("f{f}").as_bytes(),
                Attrs::new(S_IFREG | 0o644, 0, 0, t),
                &[f as u8; 3000],
            )
            .map_err(|e| e.to_string())?;
        }
    }
    b.finish().map_err(|e| e.to_string())?;
    mark_mounted(&mut img)?;
    let mut s = Synth::new(&img, Faults::default())?;
    let mut x: u64 = 1;
    let mut created = Vec::new();
    for i in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = x % 4;
        match i % 5 {
            0 => {
                let p = format!("/d{d}/n{i}");
                s.create(&p)?;
                created.push(p);
            }
            1 | 2 => {
                if let Some(p) = created.last() {
                    s.write(p, (x >> 8) % 20000, &[i as u8; 1500])?;
                }
            }
            3 => {
                if let Some(p) = created.pop() {
                    s.rename(&p, &format!("/d{}/m{i}", (d + 1) % 4))?;
                }
            }
            _ => s.truncate(&format!("/d{d}/f0"), (x >> 8) % 3000)?,
        }
    }
    let bytes = s.trace();
    let tr = trace::parse(&bytes).map_err(|e| e.to_string())?;
    println!("{} records, {} bytes of trace", tr.records.len(), bytes.len());
    let t0 = Instant::now();
    let out = crashcheck::run(img, &tr, &Config::default())?;
    print!("{}", out.report.text(&|id| format!("--only {id}")));
    println!("{:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
